// ESLint 9 flat config: typescript-eslint's type-aware recommended set (no-floating-promises, no-misused-promises,
// only-throw-error, unbound-method, ...) plus rules that catch real bugs in a VMM: a switch that misses an exit
// reason, a loose comparison of a register value, a `return p` that escapes its try. Run by `npm run lint`.
// A rule is turned off or relaxed only with its reason beside it.

import { URL, fileURLToPath } from 'node:url';

import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    // build outputs and the guest/native side (C, C++, asm, shell); the only JavaScript here is this file and
    // tools/bundle-launcher.cjs.
    // tests/payloads/*.{S,c} are never matched: only *.ts and *.js are linted
    ignores: ['dist/', 'node_modules/', 'build/', '.tap/', 'guest/', 'native/', 'kernel-config/', 'bench/results/'],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // the build's own program (noUncheckedIndexedAccess on), so a `!` it needs is not reported as unnecessary
        project: './tsconfig.json',
        tsconfigRootDir: fileURLToPath(new URL('.', import.meta.url)),
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // a switch over an exit reason, device state or message kind must name every case; a `default:` is taken
      // as a deliberate catch-all (else every `switch (errno)` over a string would need a case for undefined)
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // `==` between a register value and a constant hides a string/number mix-up; `== null` is the one idiom kept
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // tap queues a subtest itself and reports its failure; only t.test() is exempt (t.rejects() etc. still need await)
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: '@tapjs/test', name: 'test' }] },
      ],
      // `return p` inside try/catch/finally skips the catch and runs the finally before p settles
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // a `_`-prefixed parameter is unused on purpose: an override or callback with a fixed signature
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['tests/**/*.ts'],
    rules: {
      // tap callbacks are `async` by house habit; tap reports a synchronous throw and a rejection alike
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // this file is plain ESM JavaScript outside tsconfig.json: no type information for it
    files: ['eslint.config.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    // the bundle launcher: a CommonJS script Node runs as is (tools/bundle.ts copies it beside each bundle body)
    files: ['tools/bundle-launcher.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'readonly', __dirname: 'readonly', process: 'readonly', setTimeout: 'readonly' },
    },
  },
);
