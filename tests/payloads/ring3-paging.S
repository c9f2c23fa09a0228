# ring3-paging: ring3.S with 32-bit PSE paging enabled before dropping to ring 3 (see ring3.S).
        .set PAGING, 1
        .include "ring3.S"
