// Starts Debian's Chromium headless for the browser tests: `$CHROMIUM` or
// /usr/bin/chromium, with the background services off (this machine's network is
// closed, and they would only add failed requests).
import { chromium } from "playwright-core";

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
