// ESLint on the website's own scripts (book/live/), pinned in package-lock.json:
//   node book/vendor/node_modules/eslint/bin/eslint.js --config book/vendor/eslint.config.mjs book/live
// (tests/test_live_lint.py runs it). The recommended rules, for ES modules that run in
// the browser; unused variables are errors, except arguments named with a leading _.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["**/*.mjs"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      eqeqeq: ["error", "always", { null: "ignore" }],
      "prefer-const": "error",
      "no-var": "error",
    },
  },
];
