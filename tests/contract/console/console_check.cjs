// Drives the operator console in a real headless chromium (Debian's), as an
// operator would: signs in with the token, waits for every plot to show
// data, writes a screenshot, and reports what it saw as JSON on stdout.
// Usage: node console_check.cjs BASE_URL OPERATOR_TOKEN SCREENSHOT_PATH
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [base, token, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Root cannot use chromium's sandbox in a container.
    args: ["--no-sandbox"],
  });
  const report = { signInErrors: [], consoleErrors: [], plots: {}, badges: {} };
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    let errors = report.signInErrors;
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(String(error)));

    const first = await page.goto(`${base}/admin/console`);
    report.signInStatus = first.status();
    await page.fill("#token", "not-the-operator-token");
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    report.wrongTokenMessage = await page.textContent(".message");

    await page.fill("#token", token);
    errors = report.consoleErrors;
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    report.consoleUrl = page.url();
    await page.waitForFunction(
      () =>
        document.body.dataset.ready === "true" &&
        [...document.querySelectorAll("figure.plot")].every((f) => Number(f.dataset.points) > 0),
      null,
      { timeout: 45000, polling: 250 },
    );
    // A few refreshes more, so the lines show a stretch of time.
    await page.waitForTimeout(6000);
    for (const figure of await page.$$("figure.plot")) {
      const name = await figure.getAttribute("data-plot");
      report.plots[name] = await figure.evaluate((f) => ({
        points: Number(f.dataset.points),
        paths: f.querySelectorAll("path.series").length,
        bars: [...f.querySelectorAll("rect")].length,
        labels: [...f.querySelectorAll("svg text, .legend span")].map((t) => t.textContent),
      }));
    }
    for (const badge of await page.$$(".badge")) {
      const id = await badge.getAttribute("id");
      report.badges[id] = await badge.$eval(".value", (v) => v.textContent);
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    report.screenshot = screenshot;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report, null, 2));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
