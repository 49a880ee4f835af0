// The page talks to the /v1 API of the same server; nothing is fetched from elsewhere.
const $ = (id) => document.getElementById(id);
let health = null;

async function api(path, body, key) {
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, key ? { "X-API-Key": key } : {}),
    body: JSON.stringify(body),
  };
  const res = await fetch(path, opts);
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bars(title, weights) {
  const names = Object.keys(weights || {});
  if (!names.length) return null;
  const box = el("div", "bars");
  box.setAttribute("aria-label", title);
  for (const name of names) {
    const share = weights[name];
    const bar = el("div", "bar");
    const fill = el("span");
    fill.style.width = `${Math.round(share * 100)}%`;
    bar.appendChild(fill);
    box.append(el("span", "", name.replace(/_/g, " ")), bar, el("span", "", `${Math.round(share * 100)}%`));
  }
  return box;
}

function show(title, items, note) {
  $("results-title").textContent = title;
  $("message").textContent = note || (items.length ? "" : "No items left to recommend.");
  $("message").className = "muted";
  const cards = $("results");
  cards.replaceChildren();
  items.forEach((item, rank) => {
    const card = el("article", "card");
    card.dataset.itemId = item.item_id;
    const top = el("div", "top");
    top.append(el("h3", "", `${rank + 1}. ${item.title}`), el("span", "score", `score ${item.score.toFixed(3)}`));
    card.appendChild(top);
    const ex = item.explanation;
    const reason = (ex && ex.reason) || item.reason;
    if (reason) card.appendChild(el("p", "reason", reason));
    if (ex) {
      const user = bars("profile fields", ex.user_fields);
      const itemBars = bars("item fields", ex.item_fields);
      if (user) card.append(el("span", "similar", "What mattered in the profile"), user);
      if (itemBars) card.append(el("span", "similar", "What mattered in the item"), itemBars);
      if (ex.similar_titles && ex.similar_titles.length)
        card.appendChild(el("p", "similar", `Similar liked: ${ex.similar_titles.join(", ")}`));
    }
    if (item.text_score !== undefined) card.appendChild(el("p", "similar", `text match ${item.text_score.toFixed(3)}`));
    cards.appendChild(card);
  });
}

function fail(err) {
  $("message").textContent = err.message;
  $("message").className = "error";
  $("results").replaceChildren();
}

async function start() {
  health = await api("/v1/health");
  $("status").textContent = `${health.model} model · LM ${health.lm || "none"} · ${health.users} users · ${health.items} items`;
  if (!health.can_explain) {  // the server refuses explain=true for this model
    $("user-explain").checked = false;
    $("user-explain").disabled = true;
  }
  const users = await api("/v1/users?limit=200");
  for (const u of users) {
    const label = Object.entries(u).filter(([k]) => k !== "user_id" && k !== "zip_code").map(([, v]) => v).join(", ");
    $("user-select").appendChild(new Option(`${u.user_id}${label ? ` — ${label}` : ""}`, u.user_id));
  }
  for (const name of health.user_fields.filter((f) => f !== "zip_code")) {
    const input = el("input");
    input.name = name;
    input.placeholder = { gender: "F or M", age: "31", occupation: "writer" }[name] || name;
    if (name === "age") input.inputMode = "numeric";
    const label = el("label", "", name.replace(/_/g, " "));
    label.appendChild(input);
    $("profile-fields").appendChild(label);
  }
  if (!health.reads_genres) $("item-genres-label").hidden = true;  // the server would refuse them
  if (health.item_fields.length) $("item-title").placeholder = "the name shown for it";
  for (const name of health.item_fields) {  // the run's items table's own columns (category, ...)
    const input = el("input");
    input.name = name;
    input.placeholder = name;
    const label = el("label", "", name.replace(/_/g, " "));
    label.appendChild(input);
    $("item-fields").appendChild(label);
  }
}

$("user-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const user = $("user-select").value;
  try {
    const data = await api(`/v1/users/${encodeURIComponent(user)}/recommendations?k=10&explain=${$("user-explain").checked}`);
    show(`For user ${user}`, data.items, data.note);
  } catch (err) { fail(err); }
});

$("profile-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const profile = {};
  for (const input of $("profile-fields").querySelectorAll("input")) {
    if (input.value.trim()) profile[input.name] = input.name === "age" ? Number(input.value) : input.value.trim();
  }
  // IDs go as written: the server reads 7 and "7" alike, but a run of text IDs tells "007" from "7"
  const liked = $("liked").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { k: 10, liked };
  if (Object.keys(profile).length) body.profile = profile;
  try { show("For your profile", (await api("/v1/recommendations/profile", body)).items); } catch (err) { fail(err); }
});

$("query-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { query: $("query").value, k: 10 };
  if ($("query-for-user").checked) body.user_id = $("user-select").value;
  try { show(`“${body.query}”`, (await api("/v1/recommendations/query", body)).items); } catch (err) { fail(err); }
});

$("item-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const genres = $("item-genres-label").hidden ? [] : $("item-genres").value.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    const body = { title: $("item-title").value, genres };
    const fields = {};
    for (const input of $("item-fields").querySelectorAll("input")) fields[input.name] = input.value.trim();
    if (Object.keys(fields).length) body.fields = fields;
    const item = await api("/v1/items", body, $("api-key").value);
    const data = await api("/v1/recommendations/query", { query: `${item.title} ${genres.join(" ")}`, k: 10 });
    show(`Added ${item.title} (ID ${item.item_id}): closest items`, data.items, item.note);
  } catch (err) { fail(err); }
});

start().catch(fail);
