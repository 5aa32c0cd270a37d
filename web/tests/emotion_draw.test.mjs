// Drawing on a recording stand-in for CanvasRenderingContext2D: what is drawn, and that no
// input (missing, partial, odd data) leads to NaN coordinates or an exception.
import assert from "node:assert/strict";
import { test } from "node:test";

import { EMOTIONS, strengthRange } from "../js/emotion_wheel_math.js";
import { directionReport, loopReport } from "../js/emotion_ui_data.js";
import { EMOTION_COLOURS, drawBars, drawLoopChart, drawWheel, wheelGeometry } from "../js/emotion_draw.js";

function recordingContext() {
  const calls = [];
  const state = {};
  const ctx = new Proxy(state, {
    get(target, prop) {
      if (prop === "calls") return calls;
      if (prop === "measureText") return (text) => ({ width: String(text).length * 6 });
      if (prop in target) return target[prop];
      return (...args) => calls.push({ name: prop, args, fillStyle: target.fillStyle, font: target.font });
    },
    set(target, prop, value) {
      target[prop] = value;
      return true;
    },
  });
  return ctx;
}

function assertFinite(ctx) {
  for (const { name, args } of ctx.calls) {
    for (const arg of args) if (typeof arg === "number") assert.ok(Number.isFinite(arg), `${name}(${args.join(", ")})`);
  }
}

const texts = (ctx) => ctx.calls.filter((c) => c.name === "fillText").map((c) => c.args[0]);
const RANGE = strengthRange(0, 2, 0.05);

test("the wheel labels all eight emotions, marks the target and shows the strength", () => {
  const ctx = recordingContext();
  const geometry = drawWheel(ctx, 320, 190, { emotion: "fear", strength: 1.25, range: RANGE, blend: null, note: null });
  assert.deepEqual(geometry, wheelGeometry(320, 190, "contentment".length * 6));
  assert.ok(geometry.radius > 40);
  for (const emotion of EMOTIONS) assert.ok(texts(ctx).includes(emotion), emotion);
  assert.ok(texts(ctx).includes("×1.25"));
  const fearLabel = ctx.calls.find((c) => c.name === "fillText" && c.args[0] === "fear");
  assert.equal(fearLabel.fillStyle, EMOTION_COLOURS.fear);
  assert.match(fearLabel.font, /bold/);
  assertFinite(ctx);
});

test("a blend highlights its emotions; a note replaces the strength", () => {
  const ctx = recordingContext();
  drawWheel(ctx, 320, 190, { emotion: "awe", strength: 1, range: RANGE, blend: { awe: 0.7, sadness: 0.3 },
                             note: "set by a link" });
  const bold = ctx.calls.filter((c) => c.name === "fillText" && /bold/.test(c.font)).map((c) => c.args[0]);
  assert.deepEqual(bold.sort(), ["awe", "sadness"]);
  assert.ok(texts(ctx).includes("set by a link"));
  assert.ok(!texts(ctx).some((t) => t.startsWith("×")));
  assertFinite(ctx);
});

test("the wheel copes with missing values and tiny boxes", () => {
  for (const state of [
    { emotion: undefined, strength: null, range: null, blend: null, note: null },
    { emotion: "joy", strength: Number.NaN, range: RANGE, blend: null, note: null },
    { emotion: "awe", strength: 7, range: RANGE, blend: null, note: null },
  ]) {
    const ctx = recordingContext();
    drawWheel(ctx, 20, 10, state);
    assertFinite(ctx);
  }
});

test("bars show each emotion's share, or a hint without a source image", () => {
  const source = Object.fromEntries(EMOTIONS.map((e) => [e, e === "sadness" ? 0.65 : 0.05]));
  const ctx = recordingContext();
  drawBars(ctx, 320, 118, directionReport({ emotion_direction: [{ target: "awe", strength: 1, source }] }));
  assert.ok(texts(ctx).includes("65%") && texts(ctx).filter((t) => t === "5%").length === 7);
  assertFinite(ctx);
  const empty = recordingContext();
  drawBars(empty, 320, 118, directionReport({ emotion_direction: [{ target: "awe", strength: 1, source: null }] }));
  assert.equal(texts(empty).length, 1);
  assert.match(texts(empty)[0], /source image/);
});

test("the loop chart plots every candidate and rings the best one", () => {
  const ctx = recordingContext();
  drawLoopChart(ctx, 320, 130, loopReport({
    emotion_loop: [
      { iteration: 0, denoise: 0.6, ssim: [0.9, 0.7], target_probability: [0.2, 0.4], accepted: [false, true] },
      { iteration: 1, denoise: 0.7, ssim: [0.6, 0.3], target_probability: [0.7, 0.9], accepted: [true, false] },
    ],
    emotion_loop_summary: [{ target: "sadness", best: 2, stopped: "confident", confidence: 0.6, ssim_window: [0.5, 0.8] }],
  }));
  const arcs = ctx.calls.filter((c) => c.name === "arc");
  assert.equal(arcs.length, 4 + 1); // four candidates, one best ring
  assert.equal(ctx.calls.filter((c) => c.name === "fill").length, 2); // two accepted
  assert.ok(texts(ctx).includes("best: pass 2 · confident"));
  assertFinite(ctx);
});

test("the loop chart draws a hint without data and survives partial data", () => {
  const ctx = recordingContext();
  drawLoopChart(ctx, 320, 130, null);
  assert.match(texts(ctx)[0], /Run the loop/);
  const partial = recordingContext();
  drawLoopChart(partial, 320, 130, loopReport({ emotion_loop: [{}, { target_probability: [0.5], ssim: [null] }] }));
  assertFinite(partial);
});
