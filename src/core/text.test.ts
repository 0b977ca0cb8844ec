import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controlCharacters, stripControls } from './text.ts';

test('stripControls removes what XML cannot carry and keeps tab and line breaks', () => {
  assert.equal(stripControls('a\x00b\x08c\x0bd\x0ce\x1ff\x7fg\ufffeh\uffffi'), 'abcdefghi');
  assert.equal(stripControls('tab\there\nline\r\n'), 'tab\there\nline\r\n');
  assert.equal(stripControls('ünïcødé 😀 \u00a0\u2028'), 'ünïcødé 😀 \u00a0\u2028');
  // Bidirectional embeddings, overrides and isolates go; right-to-left text and its marks stay.
  assert.equal(stripControls('a\u202ab\u202bc\u202cd\u202de\u202ef\u2066g\u2067h\u2068i\u2069'), 'abcdefghi');
  assert.equal(stripControls('שלום \u200fعربي\u200e'), 'שלום \u200fعربي\u200e');
});

test('controlCharacters: names refuse every control character, multi-line text keeps its breaks', () => {
  for (const bad of [
    'a\x0bb',
    'x\x00',
    '\x1b[31m',
    'del\x7f',
    'nc\uffff',
    'lone \ud800 surrogate',
    'rlo\u202e',
  ])
    assert.equal(controlCharacters(bad), true, JSON.stringify(bad));
  assert.equal(controlCharacters('tab\t'), true);
  assert.equal(controlCharacters('line\n'), true);
  assert.equal(controlCharacters('tab\tand\r\nlines', true), false);
  assert.equal(controlCharacters('bell\x07', true), true);
  assert.equal(controlCharacters('Plain name (2024) [1080p] ünï 😀'), false);
});
