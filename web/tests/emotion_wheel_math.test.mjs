// Wheel geometry and blend text: `node --test web/tests/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BLEND_REMOVE_ZONE, CENTRE_DEADZONE, EMOTIONS, blendWeightAt, WHEEL_ORDER, angleToEmotion, distanceToStrength, emotionAngle, formatBlend, isPositive,
  parseBlend, pointToSelection, selectionToPoint, setBlendWeight, snapToStep, strengthRange, strengthToDistance,
} from "../js/emotion_wheel_math.js";

const RANGE = strengthRange(0, 2, 0.05); // Emotion Direction's strength widget

test("the wheel holds the eight emotions once, positives on the upper half", () => {
  assert.deepEqual([...WHEEL_ORDER].sort(), [...EMOTIONS].sort());
  for (const emotion of EMOTIONS) {
    const up = Math.sin(emotionAngle(emotion)) > 0;
    assert.equal(up, isPositive(emotion), emotion);
  }
  assert.deepEqual(EMOTIONS.filter(isPositive), ["amusement", "awe", "contentment", "excitement"]);
});

test("each sector centre maps back to its emotion, also after full turns", () => {
  for (const emotion of EMOTIONS) {
    const angle = emotionAngle(emotion);
    assert.equal(angleToEmotion(angle), emotion);
    assert.equal(angleToEmotion(angle + 2 * Math.PI), emotion);
    assert.equal(angleToEmotion(angle - 4 * Math.PI), emotion);
  }
  assert.equal(angleToEmotion(0.01), "excitement"); // just above 3 o'clock
  assert.equal(angleToEmotion(-0.01), "anger"); // just below it
});

test("emotion names are case-insensitive; unknown names are an error", () => {
  assert.equal(emotionAngle("AWE"), emotionAngle("awe"));
  assert.throws(() => emotionAngle("joy"), /unknown emotion "joy".*amusement/);
});

test("screen points: up is positive, the rim is the maximum strength, beyond it clamps", () => {
  const radius = 80;
  assert.deepEqual(pointToSelection(0, -radius, radius, RANGE).strength, 2); // straight up, on the rim
  assert.ok(isPositive(pointToSelection(0, -radius, radius, RANGE).emotion));
  assert.ok(!isPositive(pointToSelection(0, radius, radius, RANGE).emotion));
  assert.equal(pointToSelection(0, -3 * radius, radius, RANGE).strength, 2);
  assert.equal(pointToSelection(radius / 2, 0.001, radius, RANGE).strength, 1);
});

test("near the centre the emotion is kept and the strength still follows the distance", () => {
  const inside = pointToSelection(0.5 * CENTRE_DEADZONE * 80, 0, 80, RANGE);
  assert.equal(inside.emotion, null);
  assert.equal(inside.strength, snapToStep(CENTRE_DEADZONE, RANGE)); // half the dead zone of a 0..2 range
  assert.deepEqual(pointToSelection(0, 0, 80, RANGE), { emotion: null, fraction: 0, strength: 0 });
  assert.equal(pointToSelection(0, 0, 0, RANGE).strength, 0); // a zero-size wheel does not divide by zero
});

test("without a strength widget only the emotion is chosen", () => {
  const selection = pointToSelection(-50, -10, 80);
  assert.equal(selection.emotion, "contentment");
  assert.equal(selection.strength, null);
});

test("strength round-trips through the wheel on the widget's step grid", () => {
  const radius = 90;
  for (const emotion of EMOTIONS) {
    for (let strength = 0.05; strength <= 2; strength = Number((strength + 0.05).toFixed(2))) {
      const point = selectionToPoint(emotion, strength, radius, RANGE);
      const back = pointToSelection(point.x, point.y, radius, RANGE);
      assert.equal(back.strength, strength, `${emotion} ${strength}`);
      if (strength / 2 >= CENTRE_DEADZONE) assert.equal(back.emotion, emotion, `${emotion} ${strength}`);
    }
  }
});

test("snapping follows the step from min and removes float noise", () => {
  assert.equal(snapToStep(0.1 + 0.2, strengthRange(0, 2, 0.1)), 0.3);
  assert.equal(snapToStep(1.024, RANGE), 1);
  assert.equal(snapToStep(1.026, RANGE), 1.05);
  assert.equal(snapToStep(5, RANGE), 2);
  assert.equal(snapToStep(-1, RANGE), 0);
  assert.equal(snapToStep(0.37, strengthRange(0.2, 1, 0)), 0.37); // no step: continuous
  assert.equal(distanceToStrength(0.5, strengthRange(1, 3, 0.5)), 2);
  assert.equal(strengthToDistance(3, strengthRange(1, 3, 0.5)), 1);
  assert.equal(strengthToDistance(Number.NaN, RANGE), 0);
});

test("a broken widget range still gives a usable one", () => {
  assert.deepEqual(strengthRange(undefined, undefined, undefined), { min: 0, max: 1, step: 0 });
  assert.deepEqual(strengthRange(2, 1, -1), { min: 2, max: 3, step: 0 });
});

test("blend text parses like the node: weights, bare names, repeats, case", () => {
  const parsed = parseBlend("Awe:0.7, contentment:0.3");
  assert.deepEqual(parsed.weights, { awe: 0.7, contentment: 0.3 });
  assert.ok(Math.abs(parsed.normalised.awe - 0.7) < 1e-12);
  assert.deepEqual(parseBlend("fear, fear:2").normalised, { fear: 1 });
  assert.deepEqual(parseBlend("awe, sadness").normalised, { awe: 0.5, sadness: 0.5 });
  assert.equal(parseBlend(""), null);
  assert.equal(parseBlend("   "), null);
  assert.equal(parseBlend(undefined), null);
  assert.match(parseBlend("joy:1").error, /unknown emotion "joy"/);
  assert.match(parseBlend("awe:lots").error, /bad weight for awe/);
  assert.match(parseBlend("awe:-1").error, /bad weight/);
  assert.match(parseBlend("awe:0").error, /zero/);
});

test("blend weights are set, replaced and removed; refused text is left alone", () => {
  assert.equal(setBlendWeight("", "awe", 0.5), "awe:0.5");
  assert.equal(setBlendWeight("sadness:1, awe:0.5", "awe", 0.25), "awe:0.25, sadness:1");
  assert.equal(setBlendWeight("awe:0.5, fear", "awe", 0), "fear:1");
  assert.equal(setBlendWeight("joy:1", "awe", 1), null);
  assert.throws(() => setBlendWeight("", "joy", 1), /unknown emotion/);
  assert.equal(formatBlend({ fear: 1 / 3, amusement: 0 }), "fear:0.3333");
});

test("shift+click weights: the distance on a 0.05 grid, removal inside the first ring", () => {
  assert.ok(BLEND_REMOVE_ZONE > CENTRE_DEADZONE, "the removal ring must be reachable outside the dead zone");
  assert.equal(blendWeightAt(0.1), 0);
  assert.equal(blendWeightAt(BLEND_REMOVE_ZONE), 0.25);
  assert.equal(blendWeightAt(0.62), 0.6);
  assert.equal(blendWeightAt(1), 1);
  assert.equal(setBlendWeight("awe:0.5, fear:1", "fear", blendWeightAt(0.1)), "awe:0.5");
});
