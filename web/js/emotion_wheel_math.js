// Geometry of the emotion wheel and the blend text, kept free of ComfyUI so it can be
// unit-tested with `node --test web/tests/`.
//
// Angles are in radians, counter-clockwise from 3 o'clock with y pointing up. Pointer
// offsets come in screen coordinates (y pointing down) relative to the wheel's centre.

/** Mikels' eight emotions in the project's canonical order (positives first). */
export const EMOTIONS = Object.freeze([
  "amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness",
]);

/**
 * Sectors counter-clockwise from 3 o'clock: the upper half holds the positive emotions and
 * the lower half the negative ones; the right side is energetic and the left side calm, so
 * the emotions facing each other across the horizontal axis are alike in arousal.
 */
export const WHEEL_ORDER = Object.freeze([
  "excitement", "amusement", "awe", "contentment", "sadness", "disgust", "fear", "anger",
]);

export const SECTOR = (2 * Math.PI) / WHEEL_ORDER.length;

/** Inside this fraction of the radius a click sets strength only and keeps the emotion. */
export const CENTRE_DEADZONE = 0.08;

const TAU = 2 * Math.PI;

export function clamp(value, lo, hi) {
  return Math.min(hi, Math.max(lo, value));
}

/** Canonical name of an emotion in any case, or null when it is not one of the eight. */
export function normaliseEmotion(name) {
  if (typeof name !== "string") return null;
  const key = name.trim().toLowerCase();
  return EMOTIONS.includes(key) ? key : null;
}

export function isPositive(emotion) {
  return EMOTIONS.indexOf(normaliseEmotion(emotion)) < 4;
}

/** Centre angle of an emotion's sector. */
export function emotionAngle(emotion) {
  const index = WHEEL_ORDER.indexOf(normaliseEmotion(emotion));
  if (index < 0) throw new RangeError(`unknown emotion ${JSON.stringify(emotion)}; expected one of: ${EMOTIONS.join(", ")}`);
  return (index + 0.5) * SECTOR;
}

/** The emotion whose sector contains the angle (any real angle; wraps around). */
export function angleToEmotion(angle) {
  const wrapped = ((angle % TAU) + TAU) % TAU;
  return WHEEL_ORDER[Math.floor(wrapped / SECTOR) % WHEEL_ORDER.length];
}

/** A numeric widget's range: `{min, max, step}` with min < max and step >= 0. */
export function strengthRange(min, max, step) {
  const lo = Number.isFinite(min) ? min : 0;
  const hi = Number.isFinite(max) && max > lo ? max : lo + 1;
  return { min: lo, max: hi, step: Number.isFinite(step) && step > 0 ? step : 0 };
}

/** Round to the range's step grid (counted from min) and clamp into [min, max]. */
export function snapToStep(value, range) {
  const { min, max, step } = range;
  let snapped = clamp(value, min, max);
  if (step > 0) snapped = clamp(min + Math.round((snapped - min) / step) * step, min, max);
  return Number(snapped.toFixed(10)); // drop binary noise: 0.1 * 3 -> 0.3
}

/** Distance from the centre as a fraction of the radius (0..1) -> strength on the grid. */
export function distanceToStrength(fraction, range) {
  return snapToStep(range.min + clamp(fraction, 0, 1) * (range.max - range.min), range);
}

/** Strength -> distance from the centre as a fraction of the radius (0..1). */
export function strengthToDistance(strength, range) {
  if (!Number.isFinite(strength)) return 0;
  return clamp((strength - range.min) / (range.max - range.min), 0, 1);
}

/**
 * A pointer offset from the centre -> what it selects.
 * `emotion` is null inside the dead zone (keep the current one); `strength` is null
 * without a range (nodes that take an emotion but no strength). Points beyond the rim
 * count as the rim, so dragging outside the wheel keeps the maximum.
 */
export function pointToSelection(dx, dy, radius, range = null) {
  const distance = Math.hypot(dx, dy);
  const fraction = radius > 0 ? clamp(distance / radius, 0, 1) : 0;
  const emotion = fraction < CENTRE_DEADZONE ? null : angleToEmotion(Math.atan2(-dy, dx));
  return { emotion, fraction, strength: range ? distanceToStrength(fraction, range) : null };
}

/** Where an emotion and strength sit on the wheel, as a screen offset from the centre. */
export function selectionToPoint(emotion, strength, radius, range = null) {
  const angle = emotionAngle(emotion);
  const distance = radius * (range ? strengthToDistance(strength, range) : 1);
  return { x: distance * Math.cos(angle), y: -distance * Math.sin(angle) };
}

/** Inside this fraction of the radius a shift+click removes the emotion from the blend. */
export const BLEND_REMOVE_ZONE = 0.25;

/** Distance from the centre (0..1) -> blend weight on a 0.05 grid; 0 (remove) near the centre. */
export function blendWeightAt(fraction) {
  return fraction < BLEND_REMOVE_ZONE ? 0 : snapToStep(fraction, { min: 0, max: 1, step: 0.05 });
}

/**
 * Parse blend text the way the node does (`"awe:0.7, contentment:0.3"`, a bare name weighs 1,
 * repeated names add up). Returns `{weights, normalised}` (weights as typed; normalised sums
 * to 1), `null` for empty text, or `{error}` for text the node would refuse.
 */
export function parseBlend(text) {
  if (typeof text !== "string" || !text.trim()) return null;
  const weights = {};
  for (const part of text.split(",")) {
    if (!part.trim()) continue;
    const colon = part.indexOf(":");
    const name = colon < 0 ? part : part.slice(0, colon);
    const valueText = colon < 0 ? "" : part.slice(colon + 1).trim();
    const emotion = normaliseEmotion(name);
    if (!emotion) return { error: `unknown emotion ${JSON.stringify(name.trim())}` };
    const weight = valueText ? Number(valueText) : 1;
    if (!Number.isFinite(weight) || weight < 0) return { error: `bad weight for ${emotion}: ${JSON.stringify(valueText)}` };
    weights[emotion] = (weights[emotion] ?? 0) + weight;
  }
  const total = Object.values(weights).reduce((sum, w) => sum + w, 0);
  if (!(total > 0)) return { error: "all blend weights are zero" };
  const normalised = {};
  for (const [emotion, weight] of Object.entries(weights)) if (weight > 0) normalised[emotion] = weight / total;
  return { weights, normalised };
}

/** Weights -> blend text in canonical order; zero weights are left out. */
export function formatBlend(weights) {
  return EMOTIONS.filter((e) => weights[e] > 0)
    .map((e) => `${e}:${Number(weights[e].toFixed(4))}`)
    .join(", ");
}

/**
 * Blend text with one emotion's weight set (0 removes it). Text the node would refuse is
 * returned unchanged (null) so a click never destroys what the user typed.
 */
export function setBlendWeight(text, emotion, weight) {
  const name = normaliseEmotion(emotion);
  if (!name) throw new RangeError(`unknown emotion ${JSON.stringify(emotion)}`);
  const parsed = parseBlend(text);
  if (parsed && parsed.error) return null;
  const weights = { ...(parsed ? parsed.weights : {}) };
  weights[name] = Math.max(0, weight);
  return formatBlend(weights);
}
