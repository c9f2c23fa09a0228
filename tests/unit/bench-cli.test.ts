// bench/cli.ts: a CPU profile's self time sorted into where it went.
import t from 'tap';
import { profileShares } from '../../bench/cli.js';

t.test('profileShares sorts self time by where it went', async (t) => {
  const frame = (url: string, functionName = 'f') => ({ url, functionName });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('node:internal/modules/esm/loader') },
      { id: 2, callFrame: frame('file:///x/node_modules/commander/lib/command.js') },
      { id: 3, callFrame: frame('file:///x/dist/bundle/kata-ts.js') },
      { id: 4, callFrame: frame('', '(garbage collector)') },
      { id: 5, callFrame: frame('', 'fstat') },
      { id: 6, callFrame: frame('node:fs') },
      { id: 7, callFrame: frame('', '(idle)') },
    ],
    samples: [1, 1, 2, 3, 4, 5, 6, 7, 3],
    timeDeltas: [1000, 2000, 500, 250, 4000, 100, 300, 50, 750],
  };
  t.same(profileShares(profile), {
    'Node module loader (resolve, read, link, compile)': 3,
    'dependencies (commander, ...)': 0.5,
    'kata-ts code (and bundled dependencies)': 1,
    'garbage collector': 4,
    'native calls (fstat, open, read, ...)': 0.1,
    'other Node internals': 0.3,
    'V8 and native, idle': 0.05,
  });
});
