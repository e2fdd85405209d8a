import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into dist/, which the broker serves at / (`mercato-broker --web-dir web/dist`).
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: { proxy: { "/v1": "http://127.0.0.1:8080" } },
});
