"""Debian's chromium driven by Playwright (no browser download), screenshots and the
accessibility checks of the browser tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """In CI a missing browser or checker is a failure (make test installs both); locally a skip."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: the browser tests must run; `make browser` installs it)")
    pytest.skip(f"{what}; run `make browser` to install it")


def chromium_path() -> str:
    found = os.environ.get("RELATCH_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        missing("Debian's chromium is not installed")
    return found


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# Checks of our own, run in the page: WCAG 2.2 1.3.1 (labels, relationships), 3.3.1/3.3.3
# (errors identified and tied to fields), 3.1.1 (page language), 2.4.6 (headings).
OWN_CHECKS = """() => {
  const problems = [];
  const lang = document.documentElement.getAttribute('lang');
  if (!lang) problems.push('html has no lang');
  if (!document.title.trim()) problems.push('no title');
  const h1 = document.querySelectorAll('h1');
  if (h1.length !== 1) problems.push(`expected one h1, found ${h1.length}`);
  let last = 0;
  for (const h of document.querySelectorAll('h1,h2,h3,h4,h5,h6')) {
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) problems.push(`heading jumps to ${h.tagName}`);
    last = level;
  }
  const controls = 'input:not([type=hidden]), button, select, textarea';
  for (const input of document.querySelectorAll(controls)) {
    const name = input.labels && input.labels.length ? input.labels[0].textContent.trim()
               : (input.getAttribute('aria-label') || input.textContent || '').trim();
    if (!name) problems.push(`no accessible name: ${input.outerHTML.slice(0, 80)}`);
    for (const id of (input.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)) {
      if (!document.getElementById(id)) problems.push(`aria-describedby points nowhere: ${id}`);
    }
    if (input.getAttribute('aria-invalid') === 'true') {
      const ids = (input.getAttribute('aria-describedby') || '').split(/\\s+/);
      if (!ids.some(id => id.endsWith('-error'))) problems.push(`no error for ${input.id}`);
    }
  }
  for (const form of document.querySelectorAll('form')) {
    const token = form.querySelector('input[type=hidden][name=csrf_token]');
    if (!token) problems.push('form without CSRF');
  }
  return problems;
}"""


def accessibility_problems(page: Any) -> list[str]:
    """Our own checks, then axe-core's WCAG 2.x A/AA rules (injected from node_modules)."""
    problems: list[str] = list(page.evaluate(OWN_CHECKS))
    if not AXE.exists():
        missing("axe-core is not installed under node_modules")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}});
          return {passes: r.passes.length,
                  violations: r.violations.map(v => `${v.id}: ${v.help} (${v.nodes.length})`)};
        }"""
    )
    assert result["passes"] > 10, "axe-core did not run its rules"
    problems.extend(result["violations"])
    return problems
