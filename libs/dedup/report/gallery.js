// The report page's script (dedup.report.gallery embeds it, and its hash in the page's
// Content-Security-Policy). It reads the JSON the page embeds and renders one page of
// items at a time; every name, path and reason goes into the page as text (textContent),
// never as markup.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("dedup-data").textContent);
  const C = Object.fromEntries(D.columns.map((name, i) => [name, i]));
  const IMG = D.images;
  // Repeated strings are table indices (dedup.report.gallery.IMAGE_COLUMNS).
  const decisionOf = (i) => D.decisions[IMG[i][C.decision]];
  const statusOf = (i) => D.statuses[IMG[i][C.status]];
  const reasonOf = (i) => D.reasons[IMG[i][C.reason]];
  // As Python's urllib.parse.quote(name, safe="/") (Path.as_uri, the Azure SDK's URLs).
  const encodePath = (name) => name.split("/").map((part) => encodeURIComponent(part)
    .replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())).join("/");
  function scoresOf(i) {
    const s = IMG[i][C.scores], out = {};
    for (let k = 0; k < s.length; k += 2) out[D.score_names[s[k]]] = s[k + 1];
    return out;
  }
  function partsOf(i) {
    const p = IMG[i][C.quality_parts], out = {};
    p.forEach((v, k) => { out[D.part_names[k]] = v; });
    return out;
  }
  const PAGE = { clusters: 25, similar: 25, images: 100 };
  const PART_NAMES = {
    resolution: "resolution", sharpness: "sharpness", noise: "noise",
    jpeg_quality: "compression", exposure: "exposure",
  };

  // ---- helpers: elements made with text only -----------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === "") continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function bytes(n) {
    let size = n;
    for (const unit of ["B", "KB", "MB", "GB", "TB"]) {
      if (size < 1000 || unit === "TB") return unit === "B" ? `${size} B` : `${size.toFixed(1)} ${unit}`;
      size /= 1000;
    }
    return "";
  }
  function num(v) { return Number.isInteger(v) ? String(v) : Number(v).toPrecision(3); }
  function safeHref(url) {
    return /^(https?|file):/i.test(url) ? url : "";
  }
  function safeSrc(src) {
    return src.startsWith("data:image/jpeg;base64,") || /^https?:/i.test(src) ? src : "";
  }
  function linkOf(i) {
    const col = IMG[i][C.url];
    const url = safeHref(typeof col === "number" ? D.url_prefixes[col] + encodePath(IMG[i][C.name]) : col);
    if (!url || !D.container_of.length) return url;
    const suffix = D.link_suffix[D.containers[D.container_of[i]]];
    return suffix ? url + suffix : url;
  }
  function thumbOf(i) {
    return safeSrc(IMG[i][C.thumbnail]);
  }
  function nameLink(i) {
    const name = IMG[i][C.name];
    const href = linkOf(i);
    return href ? el("a", { class: "name", href, target: "_blank", rel: "noopener", text: name })
      : el("span", { class: "name", text: name });
  }
  function scoresText(scores) {
    return Object.entries(scores || {}).map(([k, v]) => `${k} ${num(v)}`).join(", ");
  }
  function partsText(parts) {
    return Object.entries(parts || {}).map(([k, v]) => `${PART_NAMES[k] || k} ${Number(v).toFixed(2)}`).join(" · ");
  }
  function sizeLine(i) {
    const r = IMG[i];
    const out = [];
    if (r[C.quality] !== null) out.push(`quality ${Number(r[C.quality]).toFixed(3)}`);
    if (r[C.width]) out.push(`${r[C.width]}×${r[C.height]}`);
    out.push(bytes(r[C.size_bytes]));
    return out.join(" · ");
  }

  // ---- derived lists, made once -------------------------------------------------------
  let lower = null; // names in lower case, made at the first search
  function lowerNames() {
    if (!lower) lower = IMG.map((r) => r[C.name].toLowerCase());
    return lower;
  }
  const clusters = D.clusters.map(([kept, members], k) => {
    let freed = 0;
    const evidence = new Set();
    for (const m of members) {
      if (m === kept) continue;
      freed += IMG[m][C.size_bytes];
      const s = IMG[m][C.scores];
      for (let k = 0; k < s.length; k += 2) evidence.add(D.score_names[s[k]]);
    }
    return { k, kept, members, freed, evidence };
  });
  const evidenceNames = [...new Set(clusters.flatMap((c) => [...c.evidence]))].sort();
  const byDecision = (test) => IMG.map((_, i) => i).filter(test);
  const notImage = (i) => statusOf(i) === D.not_an_image;
  const lists = {
    clusters: { items: clusters },
    similar: { items: D.similar },
    unique: { items: byDecision((i) => decisionOf(i) === "unique") },
    unreadable: { items: byDecision((i) => decisionOf(i) === "unreadable" && !notImage(i)) },
    not_images: { items: byDecision(notImage) },
    all: { items: IMG.map((_, i) => i) },
  };
  const decisions = [...D.decisions].sort();

  // ---- sorts: [label, key, direction] ------------------------------------------------
  const byName = (i) => lowerNames()[i];
  const SORTS = {
    clusters: [
      ["bytes freed", (c) => c.freed, -1],
      ["cluster size", (c) => c.members.length, -1],
      ["name", (c) => byName(c.kept >= 0 ? c.kept : c.members[0]), 1],
    ],
    similar: [["name", (p) => byName(p[0]), 1]],
    images: [
      ["name", byName, 1],
      ["size", (i) => IMG[i][C.size_bytes], -1],
      ["quality", (i) => IMG[i][C.quality] ?? -1, -1],
      ["decision", decisionOf, 1],
    ],
  };
  const kindOf = (tab) => (tab === "clusters" || tab === "similar" ? tab : "images");

  const TABS = [
    ["clusters", "Duplicate clusters"],
    ["similar", "Similar, not merged"],
    ["unique", "Unique"],
    ["unreadable", "Unreadable"],
    ["not_images", "Not images"],
    ["all", "All files"],
  ];
  const state = { tab: "clusters", query: "", sort: 0, reverse: false, page: 0, evidence: "", minSize: 2, minFreed: 0, decision: "" };

  // ---- the filtered, sorted list of the current tab ----------------------------------
  let cache = { key: "", items: [] };
  function current() {
    const key = JSON.stringify([state.tab, state.query, state.sort, state.reverse, state.evidence, state.minSize, state.minFreed, state.decision]);
    if (cache.key === key) return cache.items;
    const tab = state.tab, kind = kindOf(tab);
    let items = lists[tab].items;
    const q = state.query.trim().toLowerCase();
    const names = q ? lowerNames() : null;
    const hit = (i) => names[i].includes(q);
    if (kind === "clusters") {
      items = items.filter((c) => c.members.length >= state.minSize && c.freed >= state.minFreed
        && (!state.evidence || c.evidence.has(state.evidence))
        && (!q || c.members.some(hit)));
    } else if (kind === "similar") {
      if (q) items = items.filter((p) => hit(p[0]) || hit(p[1]));
    } else {
      items = items.filter((i) => (!q || hit(i))
        && (!state.decision || decisionOf(i) === state.decision)
        && (!state.evidence || state.evidence in scoresOf(i)));
    }
    const [, keyOf, dir0] = SORTS[kind][state.sort] || SORTS[kind][0];
    const dir = state.reverse ? -dir0 : dir0;
    const keyed = items.map((item, n) => [keyOf(item), n, item]);
    keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : a[1] - b[1]));
    cache = { key, items: keyed.map((x) => x[2]) };
    return cache.items;
  }

  // ---- rendering --------------------------------------------------------------------
  function figure(i, kept) {
    const r = IMG[i];
    const src = thumbOf(i);
    const picture = src
      ? el("img", { src, alt: r[C.name], loading: "lazy" })
      : el("div", { class: "none", text: "no thumbnail" });
    const badge = decisionOf(i) === "keep" ? "KEEP" : decisionOf(i);
    const caption = el("figcaption", {},
      el("span", { class: "badge", text: badge }), nameLink(i), el("br"),
      el("span", { text: sizeLine(i) }));
    const parts = partsText(partsOf(i));
    if (parts) caption.append(el("br"), el("span", { class: "muted parts", text: parts }));
    const scores = scoresText(scoresOf(i));
    if (scores) caption.append(el("br"), el("span", { class: "muted", text: scores }));
    if (reasonOf(i) && !kept) caption.append(el("br"), el("span", { class: "muted reason", text: reasonOf(i) }));
    return el("figure", { class: kept ? "kept" : "" }, picture, caption);
  }
  function clusterItem(c) {
    const shown = c.members.slice(0, 60);
    const head = el("h2", { text: `${c.members.length} images · ${bytes(c.freed)} to free` });
    const box = el("section", { class: "item cluster" }, head);
    if (c.kept >= 0 && reasonOf(c.kept)) box.append(el("p", { class: "why", text: reasonOf(c.kept) }));
    box.append(el("div", { class: "row" }, ...shown.map((m) => figure(m, m === c.kept))));
    if (c.members.length > shown.length) box.append(el("p", { class: "muted", text: `and ${c.members.length - shown.length} more (in the JSON and CSV)` }));
    return box;
  }
  function pairItem(p) {
    const box = el("section", { class: "item pair" });
    const why = D.reasons[p[2]];
    if (why) box.append(el("p", { class: "why", text: why }));
    box.append(el("div", { class: "row" }, figure(p[0], false), figure(p[1], false)));
    return box;
  }
  function imageTable(items) {
    const head = el("tr", {}, ...["name", "decision", "status", "size", "quality", "reason"].map((h) => el("th", { text: h })));
    const rows = items.map((i) => {
      const r = IMG[i];
      return el("tr", { class: "item image" },
        el("td", {}, nameLink(i)), el("td", { text: decisionOf(i) }), el("td", { text: statusOf(i) }),
        el("td", { text: r[C.width] ? `${r[C.width]}×${r[C.height]}, ${bytes(r[C.size_bytes])}` : bytes(r[C.size_bytes]) }),
        el("td", { text: r[C.quality] === null ? "" : Number(r[C.quality]).toFixed(3), title: partsText(partsOf(i)) }),
        el("td", { class: "reason", text: reasonOf(i) }));
    });
    return el("table", { class: "list" }, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  const app = document.getElementById("app");
  const totals = el("table", { class: "totals" });
  const tabs = el("nav", { class: "tabs", role: "tablist" });
  const controls = el("div", { class: "controls" });
  const pager = el("div", { class: "pager" });
  const list = el("div", { id: "list" });
  const pagerBottom = el("div", { class: "pager" });

  function renderTotals() {
    const t = D.totals;
    const cells = [["images", t.images], ["duplicate clusters", t.clusters], ["duplicates", t.duplicates],
      ["unique", t.unique], ["unreadable", t.unreadable], ["not images", t.not_images],
      ["deleted", t.deleted], ["bytes freed by deleting the duplicates", bytes(t.bytes_freed)]];
    totals.replaceChildren(...cells.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: String(v) }))));
  }
  function renderTabs() {
    tabs.replaceChildren(...TABS.map(([id, label]) => {
      const b = el("button", { id: `tab-${id}`, role: "tab", "aria-selected": String(state.tab === id), text: `${label} (${lists[id].items.length})` });
      b.addEventListener("click", () => { Object.assign(state, { tab: id, sort: 0, reverse: false, page: 0, evidence: "", decision: "" }); renderControls(); renderList(); renderTabs(); });
      return b;
    }));
  }
  function select(id, label, options, value, onChange) {
    const s = el("select", { id }, ...options.map(([v, text]) => {
      const o = el("option", { value: v, text });
      if (v === value) o.selected = true;
      return o;
    }));
    s.addEventListener("change", () => { onChange(s.value); state.page = 0; renderList(); });
    return el("label", {}, `${label} `, s);
  }
  const search = el("input", { id: "search", type: "search", placeholder: "search by name", "aria-label": "search by name" });
  search.addEventListener("input", () => { state.query = search.value; state.page = 0; renderList(); });
  function renderControls() {
    const kind = kindOf(state.tab);
    const sorts = SORTS[kind].map(([label, , dir], n) => {
      const pressed = state.sort === n;
      const arrow = pressed ? ((state.reverse ? -dir : dir) < 0 ? " ↓" : " ↑") : "";
      const b = el("button", { class: "sort", "data-sort": label, "aria-pressed": String(pressed), text: label + arrow });
      b.addEventListener("click", () => {
        if (state.sort === n) state.reverse = !state.reverse; else Object.assign(state, { sort: n, reverse: false });
        state.page = 0; renderControls(); renderList();
      });
      return b;
    });
    const parts = [search, el("span", { class: "muted", text: "sort:" }), ...sorts];
    if (kind === "clusters") {
      parts.push(select("min-size", "size at least", [2, 3, 5, 10, 20, 50, 100].map((n) => [String(n), String(n)]), String(state.minSize), (v) => { state.minSize = Number(v); }));
      parts.push(select("min-freed", "freeing at least", [0, 1e6, 1e7, 1e8, 1e9].map((n) => [String(n), n ? bytes(n) : "any"]), String(state.minFreed), (v) => { state.minFreed = Number(v); }));
    }
    if (kind === "clusters" || state.tab === "all") {
      parts.push(select("evidence", "evidence", [["", "any"], ...evidenceNames.map((e) => [e, e])], state.evidence, (v) => { state.evidence = v; }));
    }
    if (state.tab === "all") {
      parts.push(select("decision", "decision", [["", "any"], ...decisions.map((d) => [d, d])], state.decision, (v) => { state.decision = v; }));
    }
    controls.replaceChildren(...parts);
  }
  function renderPager(box, count, size) {
    const pages = Math.max(1, Math.ceil(count / size));
    const first = count ? state.page * size + 1 : 0;
    const last = Math.min(count, (state.page + 1) * size);
    const go = (p) => { state.page = Math.min(pages - 1, Math.max(0, p)); renderList(); window.scrollTo(0, 0); };
    const prev = el("button", { class: "prev", text: "‹ previous" });
    prev.disabled = state.page === 0;
    prev.addEventListener("click", () => go(state.page - 1));
    const next = el("button", { class: "next", text: "next ›" });
    next.disabled = state.page >= pages - 1;
    next.addEventListener("click", () => go(state.page + 1));
    box.replaceChildren(prev, el("span", { class: "count", "data-count": String(count), text: `${first}–${last} of ${count} · page ${state.page + 1} of ${pages}` }), next);
  }
  function renderList() {
    const kind = kindOf(state.tab);
    const items = current();
    const size = PAGE[kind];
    state.page = Math.min(state.page, Math.max(0, Math.ceil(items.length / size) - 1));
    const page = items.slice(state.page * size, (state.page + 1) * size);
    renderPager(pager, items.length, size);
    renderPager(pagerBottom, items.length, size);
    let body;
    if (!page.length) body = [el("p", { class: "empty", text: "Nothing here." })];
    else if (kind === "clusters") body = page.map(clusterItem);
    else if (kind === "similar") body = [el("p", { class: "muted", text: "Another shot of the same scene: reported, never a duplicate." }), ...page.map(pairItem)];
    else body = [imageTable(page)];
    list.replaceChildren(...body);
  }

  renderTotals();
  renderTabs();
  renderControls();
  renderList();
  app.replaceChildren(totals, tabs, controls, pager, list, pagerBottom);
  // No duplicates: open on the similar pairs, else on every file.
  if (!clusters.length) document.getElementById(lists.similar.items.length ? "tab-similar" : "tab-all").click();
  document.documentElement.dataset.renderedMs = String(Math.round(performance.now()));
})();
