/**
 * What the portal's Chromium tests share: playwright-core's types, the viewports, the screenshot
 * folder (test-results/screenshots/, not committed) and `shoot`, which checks a page's basic
 * accessibility and takes its desktop and phone screenshots.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';

export const SHOTS = new URL('../../test-results/screenshots/', import.meta.url).pathname;

export type PW = typeof import('playwright-core');
export type Browser = Awaited<ReturnType<PW['chromium']['launch']>>;
export type Page = Awaited<ReturnType<Browser['newPage']>>;

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

/**
 * Basic accessibility checks on every page shot: one main landmark, one h1, every visible form
 * control labelled, every image-like canvas named.
 */
export async function assertAccessible(page: Page) {
  // A string, evaluated in the page: the test's TypeScript has no DOM types.
  const problems = (await page.evaluate(`(() => {
    const out = [];
    if (document.querySelectorAll('main').length !== 1) out.push('expected one <main>');
    if (document.querySelectorAll('h1').length !== 1) out.push('expected one <h1>');
    if (!document.documentElement.lang) out.push('no lang on <html>');
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden' || el.hidden) continue;
      if ((el.labels ? el.labels.length : 0) === 0 && !el.getAttribute('aria-label'))
        out.push('unlabelled ' + el.tagName.toLowerCase() + ' name=' + el.name);
    }
    for (const c of document.querySelectorAll('canvas'))
      if (!c.getAttribute('aria-label')) out.push('canvas without aria-label');
    for (const b of document.querySelectorAll('button'))
      if (!(b.textContent || '').trim() && !b.getAttribute('aria-label')) out.push('button without a name');
    return out;
  })()`)) as string[];
  assert.deepEqual(problems, [], `${page.url()}: ${problems.join('; ')}`);
}

/** Desktop and phone screenshots of the page's current URL (after the accessibility checks). */
export async function shoot(page: Page, name: string) {
  await assertAccessible(page);
  await page.screenshot({ path: join(SHOTS, `${name}-desktop.png`), fullPage: true });
  const phone = await page.context().newPage();
  await phone.setViewportSize(PHONE);
  await phone.goto(page.url());
  await phone.screenshot({ path: join(SHOTS, `${name}-phone.png`), fullPage: true });
  await phone.close();
}
