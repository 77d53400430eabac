// Lint for bugs, not style. Above all, promises: one nobody awaits, or whose rejection nobody
// handles, ends the process (Node exits on an unhandled rejection); the type checker finds them.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', '.tmp/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      // Plain-JavaScript preloads of the tests (loaded before tsx) are outside tsconfig's project.
      parserOptions: { projectService: { allowDefaultProject: ['test/robustness/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's test()/describe() return promises the runner itself awaits and reports.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/require-await': 'error',
      // A leading underscore marks a parameter or a left-out property as unused on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // Style, or patterns Parley uses on purpose: off.
      'no-control-regex': 'off', // parsers match CR, LF, NUL and other control characters in wire input
      '@typescript-eslint/no-unsafe-declaration-merging': 'off', // a class and an interface of its events (typed EventEmitter)
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      '@typescript-eslint/no-empty-object-type': 'off',
      'no-useless-escape': 'off',
      'preserve-caught-error': 'off', // the messages of rethrown errors already name the cause
    },
  },
  {
    // Test doubles implement async interfaces without awaiting anything (a fake transport's send,
    // a suite's `async () => undefined` setup): there the rule reports only that.
    files: ['test/**'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    // Plain JavaScript (this file, bin/parley.js) is not in tsconfig.json: no type information.
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
