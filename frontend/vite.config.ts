import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// Built to dist/, which `leetgaming serve` serves at /. In development, `npx vite` proxies the
// API and the websocket to a server on 127.0.0.1:8000.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: {
    proxy: {
      "/v1": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
