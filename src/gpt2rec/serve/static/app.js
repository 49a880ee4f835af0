// The page talks to the /v1 API of the same server; nothing is fetched from elsewhere.
const $ = (id) => document.getElementById(id);
let health = null;

async function api(path, body, key) {
  if (key && /[^\x20-\xff]/.test(key)) throw new Error("the API key can hold only Latin-1 characters; check what was typed");
  const opts = body === undefined ? {} : {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, key ? { "X-API-Key": key } : {}),
    body: JSON.stringify(body),
  };
  let res;
  try { res = await fetch(path, opts); } catch (err) {
    throw new Error("the server did not answer; is `gpt2rec serve` still running?");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
  return data;
}

// One answer on screen at a time: a slower, older request never replaces a newer one, and a form's
// button is off while its request runs (no double adds).
let latest = 0;
async function ask(form, title, work) {
  const mine = ++latest;
  const button = form.querySelector("button");
  button.disabled = true;
  $("results-title").textContent = title;
  $("message").textContent = "working…";
  $("message").className = "muted";
  $("results").replaceChildren();
  try {
    const [items, note, done] = await work();  // done: the heading once answered (default: title)
    if (mine === latest) show(done || title, items, note);
  } catch (err) {
    if (mine === latest) fail(err);
  } finally {
    button.disabled = false;
    if (mine === latest) $("results-title").scrollIntoView({ block: "nearest" });
  }
}

function pickedUser() {  // a typed ID wins over the list, which holds the first users only
  return $("user-id").value.trim() || $("user-select").value;
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
    $("user-explain").parentElement.title = `this run's ${health.model} model cannot say why`;
  }
  const off = [];  // panels for what this run's model cannot do, with the reason
  if (!health.lm) { $("query-form").hidden = true; off.push("plain-words requests (no language model)"); }
  if (!health.can_add_items) { $("item-form").hidden = true; off.push("adding items"); }
  if (off.length) $("message").textContent = `This ${health.model} run: no ${off.join(", no ")}.`;
  const users = await api("/v1/users?limit=200");
  for (const u of users) {
    const label = Object.entries(u).filter(([k]) => k !== "user_id" && k !== "zip_code").map(([, v]) => v).join(", ");
    $("user-select").appendChild(new Option(`${u.user_id}${label ? ` — ${label}` : ""}`, u.user_id));
  }
  if (health.users > users.length) $("user-id").placeholder = `any of the ${health.users} users' IDs`;
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

$("user-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = pickedUser();
  ask(e.target, `For user ${user}`, async () => {
    const data = await api(`/v1/users/${encodeURIComponent(user)}/recommendations?k=10&explain=${$("user-explain").checked}`);
    return [data.items, data.note];
  });
});

$("profile-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const profile = {};  // as typed: the server reads "31" as an age and names what it cannot read
  for (const input of $("profile-fields").querySelectorAll("input")) {
    if (input.value.trim()) profile[input.name] = input.value.trim();
  }
  // IDs go as written: the server reads 7 and "7" alike, but a run of text IDs tells "007" from "7"
  const liked = $("liked").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { k: 10, liked };
  if (Object.keys(profile).length) body.profile = profile;
  ask(e.target, "For your profile", async () => [(await api("/v1/recommendations/profile", body)).items]);
});

$("query-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = { query: $("query").value, k: 10 };
  if ($("query-for-user").checked) body.user_id = pickedUser();
  ask(e.target, `“${body.query}”`, async () => [(await api("/v1/recommendations/query", body)).items]);
});

$("item-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const genres = $("item-genres-label").hidden ? [] : $("item-genres").value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { title: $("item-title").value, genres };
  const fields = {};
  for (const input of $("item-fields").querySelectorAll("input")) fields[input.name] = input.value.trim();
  if (Object.keys(fields).length) body.fields = fields;
  ask(e.target, `Adding ${body.title}`, async () => {
    const item = await api("/v1/items", body, $("api-key").value);
    const data = await api("/v1/recommendations/query", { query: `${item.title} ${genres.join(" ")}`, k: 10 });
    return [data.items, item.note, `Added ${item.title} (ID ${item.item_id}): closest items`];
  });
});

start().catch(fail);
