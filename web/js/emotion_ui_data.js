// Turns the nodes' `ui` outputs into checked, plot-ready data. Anything malformed or
// missing gives null (the widget then shows a hint) instead of throwing in the UI.
// Free of ComfyUI so it can be unit-tested with `node --test web/tests/`.

import { EMOTIONS, normaliseEmotion } from "./emotion_wheel_math.js";

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const probability = (v) => (isNumber(v) ? Math.min(1, Math.max(0, v)) : null);
const firstOf = (v) => (Array.isArray(v) ? v[0] : undefined);

/**
 * Emotion Direction's `ui.emotion_direction[0]` (the report: target, strength, direction,
 * source) -> `{target, strength, source}` where source is the 8-way distribution as
 * `[{emotion, p}]` in canonical order, or null when the node ran without a source image.
 * Returns null when the message carries no usable report.
 */
export function directionReport(message) {
  const report = firstOf(message?.emotion_direction);
  if (!report || typeof report !== "object") return null;
  const target = normaliseEmotion(report.target);
  if (!target) return null;
  let source = null;
  if (report.source && typeof report.source === "object") {
    const values = EMOTIONS.map((emotion) => ({ emotion, p: probability(report.source[emotion]) }));
    source = values.every((v) => v.p !== null) ? values : null;
  }
  return { target, strength: isNumber(report.strength) ? report.strength : null, source };
}

/**
 * Emotion Critic Loop's `ui.emotion_loop` (one entry per pass: iteration, denoise and per
 * candidate ssim, target_probability, accepted) and `ui.emotion_loop_summary[0]` (target,
 * best flat candidate index, pick, stopped, passes; optionally confidence and ssim_window)
 * -> `{passes: [{pass, denoise, candidates: [{index, p, ssim, accepted, best}]}], target,
 * best: {pass, index} | null, pick, stopped, confidence, ssimWindow}`, or null.
 */
export function loopReport(message) {
  const entries = message?.emotion_loop;
  if (!Array.isArray(entries) || entries.length === 0) return null;
  const summary = firstOf(message.emotion_loop_summary) ?? {};
  const bestIndex = Number.isInteger(summary.best) ? summary.best : null;
  let index = 0;
  let best = null;
  const passes = [];
  for (const [position, entry] of entries.entries()) {
    if (!entry || typeof entry !== "object") return null;
    const ps = Array.isArray(entry.target_probability) ? entry.target_probability : [];
    const ssims = Array.isArray(entry.ssim) ? entry.ssim : [];
    const accepted = Array.isArray(entry.accepted) ? entry.accepted : [];
    const pass = Number.isInteger(entry.iteration) ? entry.iteration + 1 : position + 1;
    const candidates = ps.map((p, k) => {
      const candidate = { index, p: probability(p), ssim: probability(ssims[k]), accepted: accepted[k] === true,
                          best: index === bestIndex };
      if (candidate.best) best = { pass, index };
      index += 1;
      return candidate;
    });
    passes.push({ pass, denoise: isNumber(entry.denoise) ? entry.denoise : null, candidates });
  }
  const window = Array.isArray(summary.ssim_window) ? summary.ssim_window.map(probability) : [];
  return {
    passes,
    target: normaliseEmotion(summary.target),
    best,
    pick: typeof summary.pick === "string" ? summary.pick : null,
    stopped: typeof summary.stopped === "string" ? summary.stopped : null,
    confidence: probability(summary.confidence),
    ssimWindow: window.length === 2 && window.every((v) => v !== null) && window[0] <= window[1] ? window : null,
  };
}

/** Best target probability of each pass (null when a pass has none), for the chart's line. */
export function bestPerPass(report) {
  return report.passes.map(({ candidates }) => {
    const ps = candidates.map((c) => c.p).filter((p) => p !== null);
    return ps.length ? Math.max(...ps) : null;
  });
}
