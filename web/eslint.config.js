import js from "@eslint/js";
import tseslint from "typescript-eslint";
import reactHooks from "eslint-plugin-react-hooks";

export default tseslint.config(
  { ignores: ["dist", "node_modules", "src/api/schema.ts", "test-artifacts"] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    files: ["**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks },
    rules: reactHooks.configs.recommended.rules,
  },
  {
    // The browser tests run in Node.
    files: ["e2e/**/*.mjs"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", performance: "readonly", fetch: "readonly", Buffer: "readonly", URL: "readonly", window: "readonly" },
    },
  },
);
