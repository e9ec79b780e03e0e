// tinybn explorer: replays the recorded backward steps on the Graphviz SVG.
// Every text taken from the data goes in through textContent, never as markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const total = data.total;
  const view = document.getElementById("view");
  const counter = document.getElementById("counter");
  const stepText = document.getElementById("step-text");
  const info = document.getElementById("info");
  const buttons = {};
  for (const id of ["prev", "next", "play", "reset", "fold", "only-gamma", "only-beta",
                    "zoom-in", "zoom-out", "fit"]) {
    buttons[id] = document.getElementById(id);
  }

  // -- state: grads shown after `current` steps (null: not reached yet) ----------------
  let current = 0;
  let shown = new Array(data.nodes.length).fill(null);
  let selected = null;
  let timer = null;

  function apply(k) {  // run step k (1-based) on `shown`
    const step = data.steps[k - 1];
    shown[step.node] = step.grad;
    for (const push of step.pushes) shown[push[0]] = push[1];
  }

  function goto(k) {
    k = Math.max(0, Math.min(total, k));
    if (k < current) {
      shown = new Array(data.nodes.length).fill(null);
      for (let i = 1; i <= k; i++) apply(i);
    } else {
      for (let i = current + 1; i <= k; i++) apply(i);
    }
    current = k;
    render();
  }

  // -- the drawing: one of the <template>s, cloned into #view ---------------------------
  const templates = {};
  for (const t of document.querySelectorAll("template[data-view]")) templates[t.dataset.view] = t;
  let viewName = Object.keys(templates)[0];
  let svg = null, viewport = null, boxes = new Map(), ops = new Map();
  let transform = {x: 0, y: 0, k: 1};

  function mount(name) {
    viewName = name;
    view.replaceChildren(templates[name].content.cloneNode(true));
    svg = view.querySelector("svg");
    viewport = svg.querySelector("g.viewport");
    boxes = new Map();
    ops = new Map();
    for (const g of svg.querySelectorAll("g.node.value")) boxes.set(Number(g.dataset.node), g);
    for (const g of svg.querySelectorAll("g.node.op")) ops.set(Number(g.dataset.opOf), g);
    buttons.fold.setAttribute("aria-pressed", String(name === "folded"));
    applyFilter();
    fit();
    render();
  }

  function render() {
    counter.textContent = "step " + current + " / " + total;
    const step = current > 0 ? data.steps[current - 1] : null;
    const pushedTo = new Set(step ? step.pushes.map((p) => p[0]) : []);
    for (const [position, g] of boxes) {
      const grad = shown[position];
      g.dataset.grad = grad === null ? "" : grad;
      g.classList.toggle("filled", grad !== null);
      g.classList.toggle("current", step !== null && step.node === position);
      g.classList.toggle("pushed-to", pushedTo.has(position));
      g.classList.toggle("selected", selected === position);
      const text = g.querySelector("text.grad");
      if (text) text.textContent = "grad " + (grad === null ? "·" : grad);
    }
    for (const [position, g] of ops) g.classList.toggle("current", step !== null && step.node === position);
    if (step) {
      let text = step.text;
      if (!boxes.has(step.node)) text += "\n\n(this node is folded into a “× more samples” box; press Fold samples to unfold)";
      stepText.textContent = text;
    } else {
      stepText.textContent = "Nothing has run yet. Next step (→) runs the chain rule at " +
        data.root + ", then at each node in turn, back to the inputs.";
    }
    buttons.prev.disabled = current === 0;
    buttons.next.disabled = current === total;
    if (selected !== null) showInfo(selected);
  }

  // -- clicking a node: label, op, data, grad, its rules, and routes for x -----------------
  function row(table, name, value, cls) {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = name;
    tr.appendChild(th);
    const td = tr.insertCell();
    td.textContent = value;
    if (cls) td.className = cls;
  }

  function showInfo(position) {
    const node = data.nodes[position];
    const parts = [];
    const table = document.createElement("table");
    row(table, "label", node.name);
    row(table, "op", node.op ? node.op + " (of " + node.parents + " input(s))" : "none: a leaf");
    if (node.role) row(table, "role", node.role);
    if (node.shape) row(table, "shape", "(" + node.shape.join(", ") + ")");
    row(table, "data", node.data);
    row(table, "grad now", shown[position] === null ? "· (not reached yet)" : shown[position]);
    row(table, "grad at the end", node.grad);
    parts.push(table);
    if (node.step > 0) {
      const step = data.steps[node.step - 1];
      const h = document.createElement("h2");
      h.textContent = "Step " + node.step + ": local rule per input";
      parts.push(h);
      const rules = document.createElement("table");
      for (const push of step.pushes) {
        row(rules, data.nodes[push[0]].name, push[3] + "   adds " + push[2], "rule");
      }
      if (step.pushes.length === 0) row(rules, "", "no input needs a gradient");
      parts.push(rules);
    }
    if (node.routes) {
      const h = document.createElement("h2");
      h.textContent = "Its gradient, route by route (after the last step)";
      parts.push(h);
      const routes = document.createElement("table");
      for (const route of node.routes.routes) row(routes, "through " + route[1], route[2], "rule");
      row(routes, "sum", node.routes.sum + "  (= grad at the end)", "rule");
      parts.push(routes);
    }
    info.replaceChildren(...parts);
  }

  view.addEventListener("click", (event) => {
    if (moved) return;
    const g = event.target.closest("g.node.value, g.node.op");
    if (!g) return;
    selected = Number(g.dataset.node ?? g.dataset.opOf);
    render();
  });

  // -- filters: only the paths of γ / β ------------------------------------------------------
  function applyFilter() {
    const kinds = [];
    if (buttons["only-gamma"].getAttribute("aria-pressed") === "true") kinds.push("on-gamma");
    if (buttons["only-beta"].getAttribute("aria-pressed") === "true") kinds.push("on-beta");
    for (const g of svg.querySelectorAll("g.node, g.edge")) {
      g.classList.toggle("dim", kinds.length > 0 && !kinds.some((k) => g.classList.contains(k)));
    }
  }
  for (const [id, kind] of [["only-gamma", "γ"], ["only-beta", "β"]]) {
    const button = buttons[id];
    if (!data.paths[kind]) {
      button.disabled = true;
      button.title = "this graph has no " + kind + " parameter";
    }
    button.addEventListener("click", () => {
      button.setAttribute("aria-pressed", String(button.getAttribute("aria-pressed") !== "true"));
      applyFilter();
    });
  }

  // -- fold / unfold ---------------------------------------------------------------------------
  if (Object.keys(templates).length < 2) {
    buttons.fold.disabled = true;
    buttons.fold.title = buttons.fold.dataset.note;
  }
  buttons.fold.addEventListener("click", () => {
    mount(viewName === "folded" ? "unfolded" : "folded");
  });

  // -- pan and zoom ----------------------------------------------------------------------------
  function setTransform() {
    viewport.setAttribute("transform",
      "translate(" + transform.x.toFixed(2) + " " + transform.y.toFixed(2) + ") scale(" +
      transform.k.toFixed(5) + ")");
  }
  function fit() {
    const width = Number(svg.dataset.width), height = Number(svg.dataset.height);
    const box = view.getBoundingClientRect();
    const k = Math.min(box.width / width, box.height / height) * 0.98;
    transform = {k: k, x: (box.width - width * k) / 2, y: (box.height - height * k) / 2};
    setTransform();
  }
  function zoom(factor, cx, cy) {
    const box = view.getBoundingClientRect();
    if (cx === undefined) { cx = box.width / 2; cy = box.height / 2; }
    const k = Math.max(0.02, Math.min(20, transform.k * factor));
    transform.x = cx - (cx - transform.x) * (k / transform.k);
    transform.y = cy - (cy - transform.y) * (k / transform.k);
    transform.k = k;
    setTransform();
  }
  view.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = view.getBoundingClientRect();
    zoom(Math.exp(-event.deltaY * 0.0015), event.clientX - box.left, event.clientY - box.top);
  }, {passive: false});
  let drag = null, moved = false;
  view.addEventListener("pointerdown", (event) => {
    drag = {x: event.clientX, y: event.clientY, tx: transform.x, ty: transform.y};
    moved = false;
  });
  window.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    moved = true;
    view.classList.add("dragging");
    transform.x = drag.tx + dx;
    transform.y = drag.ty + dy;
    setTransform();
  });
  window.addEventListener("pointerup", () => { drag = null; view.classList.remove("dragging"); });
  buttons["zoom-in"].addEventListener("click", () => zoom(1.5));
  buttons["zoom-out"].addEventListener("click", () => zoom(1 / 1.5));
  // one double-click makes the labels readable: 10-point text at 12.5 px, around the pointer
  view.addEventListener("dblclick", (event) => {
    const box = view.getBoundingClientRect();
    const factor = transform.k < 1.25 ? 1.25 / transform.k : 2;
    zoom(factor, event.clientX - box.left, event.clientY - box.top);
  });
  buttons.fit.addEventListener("click", fit);

  // -- stepping ----------------------------------------------------------------------------------
  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    buttons.play.setAttribute("aria-pressed", "false");
  }
  function play() {
    if (timer !== null) { stop(); return; }
    if (current === total) goto(0);
    buttons.play.setAttribute("aria-pressed", "true");
    // about 30 s for the whole pass: 230 ms a step for the worked example's 129 steps
    const interval = Math.max(40, Math.min(400, 30000 / total));
    timer = setInterval(() => {
      if (current >= total) { stop(); return; }
      goto(current + 1);
    }, interval);
  }
  buttons.next.addEventListener("click", () => { stop(); goto(current + 1); });
  buttons.prev.addEventListener("click", () => { stop(); goto(current - 1); });
  buttons.reset.addEventListener("click", () => { stop(); goto(0); });
  buttons.play.addEventListener("click", play);
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const onButton = event.target instanceof HTMLButtonElement;
    if (event.key === "ArrowRight") { event.preventDefault(); stop(); goto(current + 1); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); stop(); goto(current - 1); }
    else if (event.key === " " && !onButton) { event.preventDefault(); play(); }
  });
  window.addEventListener("resize", fit);

  mount(viewName);
  goto(0);
  // for benchmarks: the first frame drawn with the graph mounted, fitted and stepped to 0
  requestAnimationFrame(() => setTimeout(() => performance.mark("tinybn-graph-painted"), 0));
})();
