// Canvas drawing for the wheel, the source-emotion bars and the critic-loop chart. Each
// function draws into a 2D context in CSS pixels from plain data and copes with missing
// data by drawing a hint. Free of ComfyUI (only the Canvas 2D API).

import {
  EMOTIONS, SECTOR, WHEEL_ORDER, emotionAngle, isPositive, selectionToPoint, strengthToDistance,
} from "./emotion_wheel_math.js";
import { bestPerPass } from "./emotion_ui_data.js";

export const EMOTION_COLOURS = Object.freeze({
  amusement: "#f5c542", awe: "#4fc3d9", contentment: "#8bc34a", excitement: "#ff8a3d",
  anger: "#e5483f", disgust: "#9a8a3a", fear: "#8e6bd1", sadness: "#4a78d6",
});

export const DEFAULT_THEME = Object.freeze({ text: "#dddddd", muted: "#999999", grid: "#555555", font: "sans-serif" });

const LABEL_FONT_PX = 10;
const LABEL_GAP = 5;

function font(theme, px, bold = false) {
  return `${bold ? "bold " : ""}${px}px ${theme.font}`;
}

function hint(ctx, text, width, height, theme) {
  ctx.fillStyle = theme.muted;
  ctx.font = font(theme, LABEL_FONT_PX);
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(text, width / 2, height / 2, width - 8);
}

/** Centre and radius of the wheel in a box, leaving room for the labels at the sides. */
export function wheelGeometry(width, height, labelWidth) {
  const radius = Math.max(10, Math.min(height / 2 - LABEL_FONT_PX - 2, width / 2 - labelWidth - LABEL_GAP - 4));
  return { cx: width / 2, cy: height / 2, radius };
}

/** Widest label in the wheel's font, so its geometry can leave room for it. */
export function measureLabels(ctx, theme = DEFAULT_THEME) {
  ctx.font = font(theme, LABEL_FONT_PX, true);
  return Math.max(...EMOTIONS.map((e) => ctx.measureText(e).width));
}

/**
 * The wheel. `state`: `{emotion, strength, range, blend, note}` — `range` null on nodes
 * without a strength widget, `blend` the normalised blend weights (which then replace the
 * single target), `note` a line shown instead of the strength (e.g. why the wheel is inactive).
 * Returns the geometry used, for hit-testing pointer events.
 */
export function drawWheel(ctx, width, height, state, theme = DEFAULT_THEME) {
  ctx.clearRect(0, 0, width, height);
  const geometry = wheelGeometry(width, height, measureLabels(ctx, theme));
  const { cx, cy, radius } = geometry;
  const { emotion, strength, range, blend, note } = state;
  const weightOf = (e) => (blend ? blend[e] ?? 0 : e === emotion ? 1 : 0);

  WHEEL_ORDER.forEach((e, i) => {
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.arc(cx, cy, radius, -(i + 1) * SECTOR, -i * SECTOR);
    ctx.closePath();
    ctx.globalAlpha = 0.35 + 0.55 * Math.min(1, weightOf(e));
    ctx.fillStyle = EMOTION_COLOURS[e];
    ctx.fill();
  });
  ctx.globalAlpha = 1;

  ctx.strokeStyle = theme.grid;
  ctx.lineWidth = 1;
  if (range) {
    for (const fraction of [0.25, 0.5, 0.75, 1]) {
      ctx.beginPath();
      ctx.arc(cx, cy, radius * fraction, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }
  ctx.beginPath(); // the valence line: positives above, negatives below
  ctx.moveTo(cx - radius, cy);
  ctx.lineTo(cx + radius, cy);
  ctx.stroke();

  ctx.textBaseline = "middle";
  for (const e of WHEEL_ORDER) {
    const angle = emotionAngle(e);
    const x = cx + (radius + LABEL_GAP) * Math.cos(angle);
    const y = cy - (radius + LABEL_GAP) * Math.sin(angle);
    const chosen = weightOf(e) > 0;
    ctx.font = font(theme, LABEL_FONT_PX, chosen);
    ctx.fillStyle = chosen ? EMOTION_COLOURS[e] : theme.text;
    ctx.textAlign = Math.cos(angle) >= 0 ? "left" : "right";
    ctx.fillText(e, x, y + (isPositive(e) ? -2 : 2));
  }

  if (blend) {
    if (range && Number.isFinite(strength)) { // one ring at the strength every blend part shares
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = theme.text;
      ctx.beginPath();
      ctx.arc(cx, cy, radius * strengthToDistance(strength, range), 0, 2 * Math.PI);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  } else if (emotion && EMOTIONS.includes(emotion)) {
    const point = selectionToPoint(emotion, range ? strength : null, radius * (range ? 1 : 0.8), range);
    ctx.strokeStyle = theme.text;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(cx, cy);
    ctx.lineTo(cx + point.x, cy + point.y);
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(cx + point.x, cy + point.y, 5, 0, 2 * Math.PI);
    ctx.fillStyle = EMOTION_COLOURS[emotion];
    ctx.fill();
    ctx.stroke();
    ctx.lineWidth = 1;
  }

  const caption = note ?? (range && Number.isFinite(strength) ? `×${strength.toFixed(2)}` : null);
  if (caption) {
    ctx.font = font(theme, note ? LABEL_FONT_PX : 11, !note);
    ctx.textAlign = "center";
    const w = ctx.measureText(caption).width + 8;
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(cx - w / 2, cy - 8, w, 16);
    ctx.fillStyle = theme.text;
    ctx.fillText(caption, cx, cy, width - 8);
  }
  return geometry;
}

/** The source image's 8-way distribution as horizontal bars (canonical order). */
export function drawBars(ctx, width, height, report, theme = DEFAULT_THEME) {
  ctx.clearRect(0, 0, width, height);
  if (!report?.source) {
    hint(ctx, "Connect a source image and a critic, run: its emotions show here.", width, height, theme);
    return;
  }
  const title = 14;
  const row = (height - title) / report.source.length;
  const labelWidth = 74;
  const valueWidth = 34;
  const barWidth = Math.max(10, width - labelWidth - valueWidth - 8);
  ctx.textBaseline = "middle";
  ctx.font = font(theme, LABEL_FONT_PX);
  ctx.fillStyle = theme.muted;
  ctx.textAlign = "left";
  ctx.fillText("source image evokes", 4, title / 2);
  report.source.forEach(({ emotion, p }, i) => {
    const y = title + i * row;
    const target = emotion === report.target;
    ctx.font = font(theme, LABEL_FONT_PX, target);
    ctx.fillStyle = target ? EMOTION_COLOURS[emotion] : theme.text;
    ctx.textAlign = "right";
    ctx.fillText(emotion, labelWidth - 4, y + row / 2);
    ctx.fillStyle = theme.grid;
    ctx.fillRect(labelWidth, y + 2, barWidth, row - 4);
    ctx.fillStyle = EMOTION_COLOURS[emotion];
    ctx.fillRect(labelWidth, y + 2, barWidth * p, row - 4);
    ctx.fillStyle = theme.text;
    ctx.textAlign = "left";
    ctx.fillText(`${Math.round(p * 100)}%`, labelWidth + barWidth + 4, y + row / 2);
  });
}

/**
 * Per-pass scores of the critic loop: the target's probability per candidate (filled when
 * accepted), SSIM to the source (squares), the best candidate ringed, the confidence line
 * and the SSIM window when the node reports them.
 */
export function drawLoopChart(ctx, width, height, report, theme = DEFAULT_THEME) {
  ctx.clearRect(0, 0, width, height);
  if (!report?.passes?.length) {
    hint(ctx, "Run the loop: its scores per pass show here.", width, height, theme);
    return;
  }
  const colour = EMOTION_COLOURS[report.target] ?? theme.text;
  const left = 24, right = 6, top = 16, bottom = 14;
  const plotW = width - left - right, plotH = height - top - bottom;
  const n = report.passes.length;
  const xOf = (pass) => left + ((pass - 0.5) / n) * plotW;
  const yOf = (v) => top + (1 - v) * plotH;

  if (report.ssimWindow) {
    ctx.fillStyle = "rgba(160, 160, 160, 0.15)";
    ctx.fillRect(left, yOf(report.ssimWindow[1]), plotW, yOf(report.ssimWindow[0]) - yOf(report.ssimWindow[1]));
  }
  ctx.strokeStyle = theme.grid;
  ctx.fillStyle = theme.muted;
  ctx.font = font(theme, 9);
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const v of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(left, yOf(v));
    ctx.lineTo(left + plotW, yOf(v));
    ctx.stroke();
    ctx.fillText(String(v), left - 3, yOf(v));
  }
  ctx.textAlign = "center";
  const labelEvery = Math.ceil(n / Math.max(1, Math.floor(plotW / 18)));
  report.passes.forEach(({ pass }, i) => {
    if (i % labelEvery === 0) ctx.fillText(String(pass), xOf(pass), height - bottom / 2);
  });
  if (report.confidence !== null) {
    ctx.strokeStyle = colour;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(left, yOf(report.confidence));
    ctx.lineTo(left + plotW, yOf(report.confidence));
    ctx.stroke();
    ctx.setLineDash([]);
  }

  ctx.strokeStyle = colour;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let drawing = false;
  bestPerPass(report).forEach((p, i) => {
    if (p === null) { drawing = false; return; }
    const x = xOf(report.passes[i].pass);
    if (drawing) ctx.lineTo(x, yOf(p)); else ctx.moveTo(x, yOf(p));
    drawing = true;
  });
  ctx.stroke();
  ctx.lineWidth = 1;

  const spread = Math.min(6, plotW / n / 4);
  for (const { pass, candidates } of report.passes) {
    candidates.forEach((c, k) => {
      const x = xOf(pass) + (k - (candidates.length - 1) / 2) * spread;
      if (c.ssim !== null) {
        ctx.fillStyle = theme.muted;
        ctx.fillRect(x - 2, yOf(c.ssim) - 2, 4, 4);
      }
      if (c.p === null) return;
      ctx.beginPath();
      ctx.arc(x, yOf(c.p), 3.5, 0, 2 * Math.PI);
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      if (c.accepted) ctx.fill(); else ctx.stroke();
      if (c.best) {
        ctx.beginPath();
        ctx.arc(x, yOf(c.p), 6.5, 0, 2 * Math.PI);
        ctx.strokeStyle = theme.text;
        ctx.stroke();
      }
    });
  }

  ctx.font = font(theme, 9);
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  ctx.fillStyle = colour;
  ctx.fillText(`● p(${report.target ?? "target"})`, left, top / 2);
  ctx.fillStyle = theme.muted;
  ctx.fillText("■ SSIM", left + 92, top / 2);
  const best = report.best ? `best: pass ${report.best.pass}` : "";
  const caption = [best, report.stopped].filter(Boolean).join(" · ");
  ctx.textAlign = "right";
  ctx.fillText(caption, width - right, top / 2, Math.max(10, plotW - 140));
}
