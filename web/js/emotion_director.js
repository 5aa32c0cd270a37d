// Emotion Director's frontend extension: an emotion wheel on the nodes that take a target
// emotion, the source image's emotions on Emotion Direction and the per-pass scores on
// Emotion Critic Loop. The plain widgets stay the source of truth (saved in the workflow);
// the wheel only reads and writes them, so graphs work the same without this file.

import { app } from "../../../scripts/app.js";
import { blendWeightAt, parseBlend, pointToSelection, setBlendWeight, strengthRange } from "./emotion_wheel_math.js";
import { directionReport, loopReport } from "./emotion_ui_data.js";
import { DEFAULT_THEME, drawBars, drawLoopChart, drawWheel } from "./emotion_draw.js";

/** Which widgets each node's wheel drives, which input overrides them, and its result panel. */
export const NODE_WIDGETS = Object.freeze({
  EmotionDirection: { emotion: "target_emotion", strength: "strength", blend: "blend", panel: "direction" },
  AgentPromptRewriter: { emotion: "emotion", overriddenBy: "emotion_direction" },
  EmotionCriticLoop: { emotion: "target_emotion", overriddenBy: "direction", panel: "loop" },
});

const WHEEL_HEIGHT = 200;
const PANELS = {
  direction: { name: "emotion_source", height: 130, parse: directionReport, draw: drawBars },
  loop: { name: "emotion_loop_chart", height: 130, parse: loopReport, draw: drawLoopChart },
};
const MIN_NODE_WIDTH = 320;
const WHEEL_HELP = "Click or drag: the angle picks the emotion, the distance from the centre sets the strength. "
  + "Shift+click (Emotion Direction): add the emotion to the blend, weighted by distance; "
  + "inside the first ring it is removed.";

const findWidget = (node, name) => (name ? node.widgets?.find((w) => w.name === name) : undefined);
const isLinked = (node, name) => (name ? node.inputs?.some((i) => i.name === name && i.link != null) : false);

function theme() {
  const css = getComputedStyle(document.documentElement);
  const pick = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    ...DEFAULT_THEME,
    text: pick("--input-text", DEFAULT_THEME.text),
    muted: pick("--descrip-text", DEFAULT_THEME.muted),
    grid: pick("--border-color", DEFAULT_THEME.grid),
  };
}

/** A canvas sized to its element (device pixels, canvas zoom) that repaints only on change. */
function makeCanvas() {
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "display:block;width:100%;height:100%;";
  let lastKey = null;
  return {
    canvas,
    paint(key, draw) {
      const width = canvas.clientWidth, height = canvas.clientHeight;
      if (!width || !height) return undefined;
      const scale = (window.devicePixelRatio || 1) * Math.max(1, app.canvas?.ds?.scale ?? 1);
      const fullKey = `${key}|${width}x${height}@${scale}`;
      if (fullKey === lastKey) return undefined;
      lastKey = fullKey;
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      const ctx = canvas.getContext("2d");
      ctx.setTransform(scale, 0, 0, scale, 0, 0);
      return draw(ctx, width, height);
    },
    invalidate() { lastKey = null; },
  };
}

function addPanelWidget(node, name, height, element, onDraw) {
  const widget = node.addDOMWidget(name, name, element, {
    serialize: false, // display only: never in workflow JSON nor the prompt
    getMinHeight: () => height,
    getMaxHeight: () => height,
    onDraw,
  });
  widget.serialize = false;
  return widget;
}

/** The wheel's view of the node: what to draw and whether it may be changed. */
function wheelState(node, spec) {
  const emotionWidget = findWidget(node, spec.emotion);
  const strengthWidget = findWidget(node, spec.strength);
  const blendWidget = findWidget(node, spec.blend);
  const options = strengthWidget?.options ?? {};
  const range = strengthWidget ? strengthRange(options.min, options.max, options.step2 ?? options.step / 10) : null;
  const blend = blendWidget && !isLinked(node, spec.blend) ? parseBlend(blendWidget.value) : null;
  let note = null;
  if (isLinked(node, spec.overriddenBy)) note = "set by the connected direction";
  else if ([spec.emotion, spec.strength, spec.blend].some((name) => isLinked(node, name))) note = "set by a link";
  else if (blend?.error) note = `blend: ${blend.error}`;
  return {
    emotionWidget, strengthWidget, blendWidget, range, note,
    emotion: emotionWidget?.value,
    strength: strengthWidget ? Number(strengthWidget.value) : null,
    blend: blend && !blend.error ? blend.normalised : null,
    locked: note !== null && !blend?.error,
  };
}

function setWidgetValue(node, widget, value) {
  if (!widget || widget.value === value) return;
  widget.value = value;
  widget.callback?.(widget.value, app.canvas, node);
}

function addWheel(node, spec) {
  const surface = makeCanvas();
  const { canvas } = surface;
  canvas.title = WHEEL_HELP;
  canvas.style.cursor = "crosshair";
  canvas.style.touchAction = "none";
  canvas.style.userSelect = "none";
  let geometry = null;
  let dragging = false;

  const paint = () => {
    const state = wheelState(node, spec);
    const key = JSON.stringify([state.emotion, state.strength, state.range, state.blend, state.note]);
    geometry = surface.paint(key, (ctx, w, h) => drawWheel(ctx, w, h, state, theme())) ?? geometry;
  };

  const apply = (event) => {
    const state = wheelState(node, spec);
    if (state.locked || !geometry) return;
    const rect = canvas.getBoundingClientRect();
    const zoom = rect.width / canvas.clientWidth || 1; // the canvas' zoom scales the element
    const x = (event.clientX - rect.left) / zoom - geometry.cx;
    const y = (event.clientY - rect.top) / zoom - geometry.cy;
    const selection = pointToSelection(x, y, geometry.radius, state.range);
    if (event.shiftKey && state.blendWidget) {
      if (!selection.emotion) return;
      const text = setBlendWeight(state.blendWidget.value, selection.emotion, blendWeightAt(selection.fraction));
      if (text !== null) setWidgetValue(node, state.blendWidget, text);
    } else {
      if (selection.emotion) setWidgetValue(node, state.emotionWidget, selection.emotion);
      if (state.strengthWidget && selection.strength !== null) setWidgetValue(node, state.strengthWidget, selection.strength);
      if (state.blendWidget?.value) setWidgetValue(node, state.blendWidget, ""); // a blend would override the click
    }
    paint();
    node.setDirtyCanvas?.(true, true);
  };

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return; // no preventDefault: the mouseup it would suppress records undo
    dragging = true;
    canvas.setPointerCapture?.(event.pointerId);
    apply(event);
  });
  canvas.addEventListener("pointermove", (event) => { if (dragging) apply(event); });
  const stop = (event) => {
    dragging = false;
    if (canvas.hasPointerCapture?.(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);

  addPanelWidget(node, "emotion_wheel", WHEEL_HEIGHT, canvas, paint);
}

function addResultPanel(node, panel) {
  const surface = makeCanvas();
  let data = null;
  const paint = () => surface.paint(JSON.stringify(data), (ctx, w, h) => panel.draw(ctx, w, h, data, theme()));
  addPanelWidget(node, panel.name, panel.height, surface.canvas, paint);
  return (message) => {
    data = panel.parse(message);
    surface.invalidate();
    paint();
  };
}

app.registerExtension({
  name: "EmotionDirector.Widgets",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const spec = NODE_WIDGETS[nodeData?.name];
    if (!spec) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      if (findWidget(this, spec.emotion)) addWheel(this, spec);
      if (spec.panel) this.emotionDirectorShow = addResultPanel(this, PANELS[spec.panel]);
      const [, height] = this.computeSize();
      this.setSize([Math.max(this.size[0], MIN_NODE_WIDTH), Math.max(this.size[1], height)]);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      this.emotionDirectorShow?.(message);
      return result;
    };
  },
});
