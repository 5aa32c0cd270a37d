// Parsing the nodes' `ui` outputs: `node --test web/tests/`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { EMOTIONS } from "../js/emotion_wheel_math.js";
import { bestPerPass, directionReport, loopReport } from "../js/emotion_ui_data.js";

// `ui` outputs captured from real ComfyUI runs of the nodes (random-weight test models).
const fixture = (name) => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"));

test("a real Emotion Direction run with a source image parses into 8 bars summing to 1", () => {
  const report = directionReport(fixture("emotion_direction_ui.json"));
  assert.equal(report.target, "sadness");
  assert.equal(report.source.length, 8);
  assert.ok(Math.abs(report.source.reduce((sum, s) => sum + s.p, 0) - 1) < 1e-6);
});

test("a real Emotion Critic Loop run parses pass by pass with its best candidate", () => {
  const message = fixture("critic_loop_ui.json");
  const report = loopReport(message);
  const summary = message.emotion_loop_summary[0];
  assert.equal(report.passes.length, summary.passes);
  assert.equal(report.target, summary.target);
  assert.equal(report.best.index, summary.best);
  assert.equal(report.stopped, summary.stopped);
  for (const pass of report.passes) {
    for (const c of pass.candidates) assert.ok(c.p !== null && c.ssim !== null, JSON.stringify(c));
  }
});

const source = Object.fromEntries(EMOTIONS.map((e, i) => [e, (i + 1) / 36]));

test("Emotion Direction's report gives the source distribution in canonical order", () => {
  const report = directionReport({ text: ["..."], emotion_direction: [{ target: "awe", strength: 1.5, source }] });
  assert.equal(report.target, "awe");
  assert.equal(report.strength, 1.5);
  assert.deepEqual(report.source.map((s) => s.emotion), EMOTIONS);
  assert.equal(report.source[7].p, 8 / 36);
});

test("a run without a source image has no bars; broken messages give null", () => {
  assert.equal(directionReport({ emotion_direction: [{ target: "fear", strength: 1, source: null }] }).source, null);
  assert.equal(directionReport({ emotion_direction: [{ target: "fear", source: { awe: 1 } }] }).source, null);
  assert.equal(directionReport({ emotion_direction: [{ target: "fear", strength: "x" }] }).strength, null);
  for (const message of [undefined, null, {}, { emotion_direction: [] }, { emotion_direction: "x" },
    { emotion_direction: [{ target: "joy" }] }, { emotion_direction: [null] }]) {
    assert.equal(directionReport(message), null, JSON.stringify(message));
  }
});

const loopMessage = {
  images: [{ filename: "x.png", type: "temp" }],
  emotion_loop: [
    { iteration: 0, denoise: 0.6, ssim: [0.9, 0.7], target_probability: [0.2, 0.4], accepted: [false, true] },
    { iteration: 1, denoise: 0.7, ssim: [0.65, 0.3], target_probability: [0.7, 0.9], accepted: [true, false] },
  ],
  emotion_loop_summary: [{ target: "sadness", best: 2, pick: "confident", stopped: "confident", passes: 2,
                           confidence: 0.6, ssim_window: [0.5, 0.8] }],
};

test("the critic loop's passes, flat candidate indices and best pick", () => {
  const report = loopReport(loopMessage);
  assert.equal(report.target, "sadness");
  assert.deepEqual(report.passes.map((p) => p.pass), [1, 2]);
  assert.deepEqual(report.passes[1].candidates.map((c) => c.index), [2, 3]);
  assert.deepEqual(report.best, { pass: 2, index: 2 });
  assert.ok(report.passes[1].candidates[0].best && !report.passes[1].candidates[1].best);
  assert.deepEqual(report.passes[0].candidates.map((c) => c.accepted), [false, true]);
  assert.equal(report.confidence, 0.6);
  assert.deepEqual(report.ssimWindow, [0.5, 0.8]);
  assert.deepEqual(bestPerPass(report), [0.4, 0.9]);
});

test("generation without a source has no SSIM; thresholds are optional", () => {
  const report = loopReport({
    emotion_loop: [{ iteration: 0, denoise: 1, ssim: [null], target_probability: [0.3], accepted: [true] }],
    emotion_loop_summary: [{ target: "awe", best: 0, stopped: "max_iterations" }],
  });
  assert.equal(report.passes[0].candidates[0].ssim, null);
  assert.equal(report.confidence, null);
  assert.equal(report.ssimWindow, null);
  assert.deepEqual(report.best, { pass: 1, index: 0 });
});

test("malformed loop messages give null or skip what is missing", () => {
  for (const message of [undefined, {}, { emotion_loop: [] }, { emotion_loop: "x" }, { emotion_loop: [null] }]) {
    assert.equal(loopReport(message), null, JSON.stringify(message));
  }
  const report = loopReport({ emotion_loop: [{ target_probability: [Number.NaN, 2] }] });
  assert.deepEqual(report.passes[0].candidates.map((c) => c.p), [null, 1]);
  assert.equal(report.best, null);
  assert.equal(report.target, null);
  assert.deepEqual(bestPerPass(report), [1]);
  assert.equal(loopReport({ emotion_loop: [{}], emotion_loop_summary: [{ ssim_window: [0.9, 0.1] }] }).ssimWindow, null);
});
