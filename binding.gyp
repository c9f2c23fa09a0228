{
  "targets": [
    {
      "target_name": "kata_ts_native",
      "sources": [
        "native/addon.cc",
        "native/errors_args.cc",
        "native/kvm_ioctls.cc",
        "native/memory.cc",
        "native/eventfd_kick.cc",
        "native/poll_io.cc",
        "native/tap.cc",
        "native/unix_fd.cc",
        "native/fd_guard.cc",
        "native/fs_at.cc",
        "native/mount.cc",
        "native/pty.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"]
    }
  ]
}
