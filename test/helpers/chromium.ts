/**
 * Debian's Chromium as the browser tests launch it (DESIGN.md "Real components"): headless, no
 * sandbox (root), and none of the background connections this machine's closed network refuses.
 * playwright gives every launch a fresh temporary profile (its own --user-data-dir).
 */
export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
