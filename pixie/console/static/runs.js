// The runs page: the prompt box and the list, refreshed while something runs.
"use strict";

(() => {
  const { el, api, seconds, dollars, count, when, statusBadge } = pixie;
  let timer = null;

  function row(run) {
    const label = run.title || run.prompt || run.runId;
    const tokens = run.tokens ? `${count(run.tokens.input)} / ${count(run.tokens.output)}` : "—";
    return el("tr", { dataset: { runId: run.runId } },
      el("td", {}, statusBadge(run.status)),
      el("td", {},
        el("a", { href: `/runs/${encodeURIComponent(run.runId)}`, class: "run-link", text: label }),
        run.title && run.prompt ? el("div", { class: "muted small", text: run.prompt }) : null,
        run.consoleUrl ? el("a", { href: run.consoleUrl, target: "_blank", rel: "noopener noreferrer", class: "small", text: "AWS console" }) : null),
      el("td", { class: "small", text: run.model || "—" }),
      el("td", { class: "small", text: when(run.startedAt) }),
      el("td", { text: seconds(run.durationS) }),
      el("td", { text: run.turns ?? "—" }),
      el("td", { class: "small", text: tokens }),
      el("td", { text: dollars(run.costUsd) }));
  }

  async function refresh() {
    let runs = [];
    try {
      runs = (await api("/api/runs")).runs;
    } catch (error) {
      document.getElementById("no-runs").textContent = `Cannot list runs: ${error.message}`;
      document.getElementById("no-runs").hidden = false;
      return;
    }
    const body = document.querySelector("#runs tbody");
    body.replaceChildren(...runs.map(row));
    document.getElementById("no-runs").hidden = runs.length > 0;
    clearTimeout(timer);
    const running = runs.some((r) => r.status === "RUNNING");
    timer = setTimeout(refresh, running ? 1500 : 5000);
  }

  async function setUpForm(config) {
    const choices = document.getElementById("choices");
    if (!config || !config.choices) {
      choices.hidden = true;  // a deployed stack runs with its own settings
    } else {
      document.getElementById("models").replaceChildren(...config.models.map((m) => el("option", { value: m })));
      document.getElementById("model").placeholder = config.defaultModel;
      document.getElementById("sandbox").append(...config.sandboxes.map((s) => el("option", { value: s, text: s })));
      document.getElementById("max-iterations").placeholder = String(config.maxIterations);
    }
    if (config && config.startupError) document.getElementById("start-error").textContent = config.startupError;
    document.getElementById("start-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = document.getElementById("start-error");
      const button = document.getElementById("start");
      error.textContent = "";
      const body = { prompt: document.getElementById("prompt").value };
      if (config && config.choices) {
        const model = document.getElementById("model").value.trim();
        const sandbox = document.getElementById("sandbox").value;
        const turns = document.getElementById("max-iterations").value;
        if (model) body.model = model;
        if (sandbox) body.sandbox = sandbox;
        if (turns) body.maxIterations = Number(turns);
        const budget = document.getElementById("budget-usd").value;
        if (budget) body.budgetUsd = Number(budget);
        const approve = document.getElementById("approve").value;
        if (approve) body.approve = approve;
        if (document.getElementById("no-check").checked) body.check = false;
      }
      button.disabled = true;
      try {
        const { runId } = await api("/api/runs", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        window.location.assign(`/runs/${encodeURIComponent(runId)}`);
      } catch (failure) {
        error.textContent = failure.message;
        button.disabled = false;
      }
    });
    // Enabled only now: a click (or Enter) before the handler is attached would submit the form
    // as a plain GET of this page and lose the prompt.
    document.getElementById("start").disabled = false;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    const config = await pixie.showMode();
    await setUpForm(config);
    refresh();
  });
})();
