// Drives the dashboard in headless Chromium. Started by tests/api/dashboard.rs, which
// serves the API with an in-memory session and moves that session along when asked:
//
//   node dashboard.mjs <base-url> <screenshot-dir>
//
// Talks to the Rust side over stdio: prints `STEP <name>` and waits for a line on stdin
// before going on. Exits non-zero with the reason on the first failed check.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { launchChromium } from "./launch.mjs";

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node dashboard.mjs <base-url> <screenshot-dir>");
  process.exit(2);
}
const origin = new URL(base).origin;
const TIMEOUT = 15000;

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
async function step(name) {
  console.log(`STEP ${name}`);
  const next = await lines.next();
  if (next.done) throw new Error(`the test runner went away at step ${name}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const problems = [];
const isApi = (url) => url.startsWith(origin) && /^\/(send|user|app)\//.test(new URL(url).pathname);
function watch(page) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    // Chromium logs every 4xx/5xx response. An API error is shown on the page by
    // design; any other (a missing asset, say) is a problem.
    const url = msg.location().url || "";
    const apiError = msg.text().startsWith("Failed to load resource") && isApi(url);
    if (!apiError) problems.push(`console error: ${msg.text()} (${url})`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith("data:") && new URL(url).origin !== origin) {
      problems.push(`request to another host: ${url}`);
    }
  });
  page.on("requestfailed", (req) => problems.push(`failed request: ${req.url()} (${req.failure()?.errorText})`));
  page.on("response", (res) => {
    if (res.status() >= 400 && !isApi(res.url())) {
      problems.push(`HTTP ${res.status()} for ${res.url()}`);
    }
  });
}

/** Every form control has a label and every button a name. */
async function checkLabels(page) {
  const unlabelled = await page.evaluate(() => {
    const missing = [];
    for (const input of document.querySelectorAll("input, select, textarea")) {
      if (input.labels.length === 0 && !input.getAttribute("aria-label")) missing.push(input.name || input.id);
    }
    for (const button of document.querySelectorAll("button")) {
      if (!button.textContent.trim()) missing.push(`button#${button.id}`);
    }
    return missing;
  });
  check(unlabelled.length === 0, `controls without a label: ${unlabelled.join(", ")}`);
}

async function waitForQr(page) {
  const qr = page.locator("#qr-image");
  await qr.waitFor({ state: "visible", timeout: TIMEOUT });
  await page.waitForFunction(() => {
    const img = document.getElementById("qr-image");
    return img.complete && img.naturalWidth >= 256;
  }, null, { timeout: TIMEOUT });
  const caption = await page.locator("#qr-caption").textContent();
  check(/expires in \d+ s/.test(caption), `no countdown under the QR: "${caption}"`);
}

let current = null; // the page under test, for the report on failure

const browser = await launchChromium();
let failed = false;
try {
  mkdirSync(shots, { recursive: true });
  const desktop = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  watch(desktop);
  // What the page hears on its live socket (`ws`).
  const heard = [];
  desktop.on("websocket", (socket) => {
    socket.on("framereceived", (frame) => heard.push(String(frame.payload)));
  });
  current = desktop;
  await desktop.goto(base, { waitUntil: "load" });

  // Logged out: the QR appears with its countdown.
  await waitForQr(desktop);
  check((await desktop.locator("#badge").textContent()) === "Not logged in", "badge does not say logged out");
  await checkLabels(desktop);
  await desktop.screenshot({ path: join(shots, "desktop-login.png"), fullPage: true });

  // The first code runs out: the page fetches the next one by itself.
  const firstQr = await desktop.locator("#qr-image").getAttribute("src");
  await step("qr-shown");
  await desktop.waitForFunction(
    (first) => document.getElementById("qr-image").getAttribute("src") !== first,
    firstQr,
    { timeout: TIMEOUT },
  );
  await waitForQr(desktop);

  // The phone is scanned: the page notices on its own.
  await step("qr-renewed");
  await desktop.locator("#account-text").getByText("Logged in as +6289685028000").waitFor({ timeout: TIMEOUT });
  check(await desktop.locator("#login").isHidden(), "the QR is still shown after login");
  // The page's socket heard the notice the runner caused (a webhook set).
  for (let waited = 0; !heard.some((f) => f.includes("DEVICE_WEBHOOK_CONFIG_UPDATED")); waited += 100) {
    check(waited < TIMEOUT, `the page's socket heard no notice: ${JSON.stringify(heard)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  // A bad phone number: the envelope's validation message is shown.
  const form = desktop.locator('form[action="send/message"]');
  await form.getByLabel("Phone or group ID").fill("not-a-phone");
  await form.getByLabel("Message").fill("hello");
  await form.getByRole("button", { name: "Send message" }).click();
  const result = form.locator(".result");
  await result.getByText("400 · phone: must contain only digits.").waitFor({ timeout: TIMEOUT });
  check(await result.evaluate((e) => e.classList.contains("error")), "the error is not marked as one");

  // The same form with a good phone succeeds and shows the results.
  await form.getByLabel("Phone or group ID").fill("6289685028129");
  await form.getByRole("button", { name: "Send message" }).click();
  await result.getByText("200 · Success").waitFor({ timeout: TIMEOUT });
  const shown = await result.locator("pre").textContent();
  check(shown.includes("Message sent to 6289685028129@s.whatsapp.net"), `results not shown: ${shown}`);
  await step("message-sent");

  // A GET route, through the second button of a form.
  const groups = desktop.getByRole("button", { name: "My groups" });
  await groups.click();
  await groups.locator("xpath=../..").locator(".result").getByText("200 · Success get list groups").waitFor({ timeout: TIMEOUT });
  await desktop.screenshot({ path: join(shots, "desktop-logged-in.png"), fullPage: true });

  // Logout asks first; dismissing it does nothing.
  desktop.once("dialog", (d) => d.dismiss());
  await desktop.locator("#logout").click();
  await step("logout-dismissed");
  desktop.once("dialog", (d) => {
    check(d.message().startsWith("Log out?"), `unexpected question: ${d.message()}`);
    d.accept();
  });
  await desktop.locator("#logout").click();
  await desktop.locator("#session-result").getByText("200 · Success logout").waitFor({ timeout: TIMEOUT });
  await waitForQr(desktop);
  await step("logged-out");

  // A second account: added and chosen; its session is its own.
  const select = desktop.locator("#account-select");
  check((await select.locator("option").count()) === 1, "one account listed at first");
  desktop.once("dialog", (d) => {
    check(d.type() === "prompt", `expected a prompt, got ${d.type()}`);
    d.accept("second");
  });
  await desktop.locator("#account-add").click();
  await desktop.locator("#session-result").getByText("200 · Device added").waitFor({ timeout: TIMEOUT });
  check((await select.inputValue()) === "second", "the new account is not chosen");
  await step("account-added");
  // The choice survives a reload.
  await desktop.reload({ waitUntil: "load" });
  await desktop.locator("#account-text").getByText("Logged in as +6281111111111").waitFor({ timeout: TIMEOUT });
  check((await select.locator("option").count()) === 2, "both accounts listed");
  check((await select.inputValue()) === "second", "the choice was lost on reload");
  await form.getByLabel("Phone or group ID").fill("6289685028129");
  await form.getByLabel("Message").fill("from the second");
  await form.getByRole("button", { name: "Send message" }).click();
  await result.getByText("200 · Success").waitFor({ timeout: TIMEOUT });
  await step("second-sent");

  // Back to the first account: logged out, so its QR is shown again.
  await select.selectOption("default");
  await waitForQr(desktop);
  await desktop.screenshot({ path: join(shots, "desktop-accounts.png"), fullPage: true });

  // Removing the second asks first, then it is gone.
  await select.selectOption("second");
  await desktop.locator("#account-text").getByText("Logged in as +6281111111111").waitFor({ timeout: TIMEOUT });
  desktop.once("dialog", (d) => {
    check(d.message().startsWith("Remove the account second?"), `unexpected question: ${d.message()}`);
    d.accept();
  });
  await desktop.locator("#account-remove").click();
  await desktop.locator("#session-result").getByText("200 · Device removed").waitFor({ timeout: TIMEOUT });
  await desktop.waitForFunction(() => document.querySelectorAll("#account-select option").length === 1, null, { timeout: TIMEOUT });
  check((await select.inputValue()) === "default", "the remaining account is not chosen");
  await waitForQr(desktop);
  await step("account-removed");

  // Phone width: one column, nothing wider than the screen.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  watch(phone);
  current = phone;
  await phone.goto(base, { waitUntil: "load" });
  await waitForQr(phone);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
  await phone.screenshot({ path: join(shots, "phone-login.png"), fullPage: true });

  // The last account removed: the page says so and makes none by itself.
  current = desktop;
  desktop.once("dialog", (d) => d.accept());
  await desktop.locator("#account-remove").click();
  await desktop.locator("#session-result").getByText("200 · Device removed").waitFor({ timeout: TIMEOUT });
  await desktop.locator("#no-account").waitFor({ state: "visible", timeout: TIMEOUT });
  check((await desktop.locator("#badge").textContent()) === "No account", "the badge does not say there is no account");
  check(await desktop.locator("#login").isHidden(), "a QR is asked for with no account");
  await desktop.reload({ waitUntil: "load" });
  await desktop.locator("#no-account").waitFor({ state: "visible", timeout: TIMEOUT });
  await step("all-removed");

  check(problems.length === 0, `problems seen by the browser:\n  ${problems.join("\n  ")}`);
  console.log("DONE");
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err.message}`);
  if (current) {
    const shown = await current.locator(".result:not([hidden]), #badge, #qr-caption").allTextContents();
    console.error(`on the page:\n  ${shown.join("\n  ")}`);
    await current.screenshot({ path: join(shots, "failure.png"), fullPage: true });
  }
} finally {
  await browser.close();
  stdin.close();
}
process.exit(failed ? 1 : 0);
