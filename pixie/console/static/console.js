// Shared helpers for the console's pages. Everything a model produced is put on the page as
// text (textContent, text nodes): never as HTML.
"use strict";

const pixie = (() => {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style") Object.assign(node.style, value);  // CSSOM: allowed by the CSP, style attributes are not
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path, options) {
    const response = await fetch(path, { credentials: "same-origin", ...(options || {}) });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const message = (body && body.error) || `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  function seconds(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    return value < 60 ? `${value.toFixed(2)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
  }

  function dollars(value) {
    if (value === null || value === undefined) return "—";
    return value === 0 ? "$0" : value < 0.01 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
  }

  function count(value) {
    return value === null || value === undefined ? "—" : Number(value).toLocaleString("en-US");
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function statusBadge(status) {
    const name = String(status || "UNKNOWN");
    return el("span", { class: `status status-${name.toLowerCase()}`, text: name });
  }

  // Long text folded: the first lines stay visible, the rest opens on a click.
  function foldable(text, options) {
    const limit = (options && options.limit) || 600;
    const lines = (options && options.lines) || 14;
    const value = text === null || text === undefined ? "" : String(text);
    const className = (options && options.class) || "";
    const tooLong = value.length > limit || value.split("\n").length > lines;
    if (!tooLong) return el("pre", { class: className, text: value });
    const head = value.split("\n").slice(0, 3).join("\n").slice(0, 200);
    return el("details", { class: `fold ${className}` },
      el("summary", {}, el("span", { class: "fold-head", text: head }), el("span", { class: "muted", text: ` … (${value.length.toLocaleString("en-US")} characters)` })),
      el("pre", { class: className, text: value }));
  }

  function pretty(jsonText) {
    if (jsonText === null || jsonText === undefined) return "";
    if (typeof jsonText !== "string") return JSON.stringify(jsonText, null, 2);
    try { return JSON.stringify(JSON.parse(jsonText), null, 2); } catch (_) { return jsonText; }
  }

  async function showMode() {
    try {
      const config = await api("/api/config");
      const mode = document.getElementById("mode");
      if (mode) mode.textContent = config.mode === "aws" ? `stack ${config.stack} (${config.region})` : `local · ${config.pixieHome}`;
      return config;
    } catch (error) {
      return null;
    }
  }

  return { el, api, seconds, dollars, count, when, statusBadge, foldable, pretty, showMode };
})();
