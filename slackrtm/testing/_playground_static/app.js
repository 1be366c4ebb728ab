// The FakeSlack playground: the workspace as a person sees it, live from server-sent
// events. No framework, no build step: plain DOM, one state object, render on change.
"use strict";

const S = {
  team: {}, bot: null, users: new Map(), channels: new Map(), messages: new Map(),
  notes: new Map(), conns: new Map(), me: null, current: null, thread: null,
  editing: null, rateLimitable: [],
};
const $ = (sel) => document.querySelector(sel);
const EMOJI = {"+1": "👍", "thumbsup": "👍", "tada": "🎉", "eyes": "👀", "heart": "❤️",
  "smile": "😄", "white_check_mark": "✅", "rocket": "🚀", "fire": "🔥", "wave": "👋"};
const QUICK = ["+1", "tada", "eyes"];

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// -- talking to the server ----------------------------------------------------------------
async function api(action, body) {
  try {
    const r = await fetch(`/playground/api/${action}`, {method: "POST",
      headers: {"Content-Type": "application/json", "X-Playground": "1"},
      body: JSON.stringify(body)});
    const data = await r.json();
    if (!data.ok) toast(`${action}: ${data.error}`);
    return data;
  } catch (e) {
    toast(`${action}: ${e}`);
    return {ok: false};
  }
}

function toast(text) {
  const t = $("#toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function connect() {
  const source = new EventSource("/playground/api/stream");
  source.addEventListener("open", () => setStatus("live", "ok"));
  source.addEventListener("error", () => setStatus("reconnecting…", "bad"));
  source.addEventListener("snapshot", (e) => snapshot(JSON.parse(e.data)));
  source.addEventListener("event", (e) => { applyEvent(JSON.parse(e.data)); render(); });
  source.addEventListener("log", (e) => addLog(JSON.parse(e.data)));
  source.addEventListener("note", (e) => { addNote(JSON.parse(e.data)); renderMessages(); });
  source.addEventListener("conns", (e) => { applyConns(JSON.parse(e.data)); renderConns(); });
  source.addEventListener("presence", (e) => {
    const p = JSON.parse(e.data), u = S.users.get(p.user);
    if (u) u.presence = p.presence;
    render();
  });
}

function setStatus(text, cls) {
  const s = $("#status");
  s.textContent = text;
  s.className = `status ${cls}`;
}

// -- state --------------------------------------------------------------------------------
function snapshot(snap) {
  S.team = snap.team; S.bot = snap.bot; S.rateLimitable = snap.rate_limitable;
  S.users = new Map(snap.users.map((u) => [u.id, u]));
  S.channels = new Map(snap.channels.map((c) => [c.id, c]));
  S.messages = new Map(Object.entries(snap.messages));
  S.conns = new Map(snap.conns.map((c) => [c.id, c]));
  if (!S.me || !S.users.has(S.me)) S.me = snap.users.find((u) => u.name === "alice")?.id
    || snap.users.find((u) => !u.is_bot)?.id;
  if (!S.current || !S.channels.has(S.current)) S.current = general();
  $("#team").textContent = S.team.name || "FakeSlack";
  $("#log").replaceChildren();
  snap.log.forEach(addLog);
  fillPickers();
  render();
}

function general() {
  for (const c of S.channels.values()) if (c.name === "general") return c.id;
  return S.channels.keys().next().value;
}

function history(cid) {
  if (!S.messages.has(cid)) S.messages.set(cid, []);
  return S.messages.get(cid);
}

function findMessage(cid, ts) { return history(cid).find((m) => m.ts === ts); }

function applyEvent(ev) {
  switch (ev.type) {
    case "message": {
      const list = history(ev.channel);
      if (ev.subtype === "message_changed") {
        const i = list.findIndex((m) => m.ts === ev.message.ts);
        if (i >= 0) list[i] = Object.assign({channel: ev.channel}, ev.message);
      } else if (ev.subtype === "message_deleted") {
        const i = list.findIndex((m) => m.ts === ev.deleted_ts);
        if (i >= 0) list.splice(i, 1);
      } else if (!list.some((m) => m.ts === ev.ts)) {
        list.push(ev);
        if (ev.subtype === "channel_name") {
          const c = S.channels.get(ev.channel);
          if (c) c.name = ev.name;
        }
      }
      break;
    }
    case "reaction_added": case "reaction_removed": {
      const m = findMessage(ev.item.channel, ev.item.ts);
      if (!m) break;
      const reactions = m.reactions || [];
      let r = reactions.find((x) => x.name === ev.reaction);
      if (ev.type === "reaction_added") {
        if (!r) { r = {name: ev.reaction, users: [], count: 0}; reactions.push(r); }
        if (!r.users.includes(ev.user)) r.users.push(ev.user);
      } else if (r) {
        r.users = r.users.filter((u) => u !== ev.user);
      }
      if (r) r.count = r.users.length;
      m.reactions = reactions.filter((x) => x.count > 0);
      break;
    }
    case "member_joined_channel": case "member_left_channel": {
      const c = S.channels.get(ev.channel);
      if (!c) break;
      c.members = c.members.filter((u) => u !== ev.user);
      if (ev.type === "member_joined_channel") c.members.push(ev.user);
      break;
    }
    case "channel_created":
      S.channels.set(ev.channel.id, {id: ev.channel.id, name: ev.channel.name, members: []});
      break;
    case "channel_rename": {
      const c = S.channels.get(ev.channel.id);
      if (c) c.name = ev.channel.name;
      break;
    }
    case "channel_deleted": case "group_deleted":
      S.channels.delete(ev.channel);
      if (S.current === ev.channel) S.current = general();
      break;
    case "channel_archive": case "channel_unarchive": {
      const c = S.channels.get(ev.channel);
      if (c) c.is_archived = ev.type === "channel_archive";
      break;
    }
    case "im_created":
      S.channels.set(ev.channel.id, {id: ev.channel.id, is_im: true, user: ev.channel.user,
        members: [S.bot, ev.channel.user]});
      break;
    case "team_join": case "user_change": {
      const u = ev.user;
      const old = S.users.get(u.id) || {presence: "active"};
      S.users.set(u.id, Object.assign(old, {id: u.id, name: u.name, real_name: u.real_name,
        is_bot: !!u.is_bot, deleted: !!u.deleted}));
      fillPickers();
      break;
    }
    case "team_rename":
      S.team.name = ev.name;
      $("#team").textContent = ev.name;
      break;
    default:
      break;
  }
}

function addNote(note) {
  if (!S.notes.has(note.channel)) S.notes.set(note.channel, []);
  S.notes.get(note.channel).push(note);
}

function applyConns(data) {
  if ("open" in data && !data.open) {
    S.conns.delete(data.id);
  } else if (data.fault === "freeze") {
    for (const id of data.ids) { const c = S.conns.get(id); if (c) c.frozen = true; }
  } else if (data.fault === "unfreeze") {
    for (const c of S.conns.values()) c.frozen = false;
  }
}

// -- rendering ----------------------------------------------------------------------------
function userName(uid) { const u = S.users.get(uid); return u ? u.name : uid; }

function channelLabel(c) {
  if (!c) return "";
  return c.is_im ? `@${userName(c.user)}` : `#${c.name}`;
}

function fillPickers() {
  const me = $("#me");
  me.replaceChildren(...[...S.users.values()].filter((u) => !u.deleted).map((u) =>
    h("option", {value: u.id, selected: u.id === S.me}, u.is_bot ? `${u.name} (bot)` : u.name)));
  const methods = $("#rl-method");
  if (!methods.options.length) {
    methods.replaceChildren(...S.rateLimitable.map((m) => h("option", {value: m}, m)));
  }
}

function render() {
  renderSidebar();
  renderHeader();
  renderMessages();
  renderConns();
}

function presenceDot(uid) {
  const u = S.users.get(uid);
  return h("span", {class: `dot ${u && u.presence === "active" ? "on" : "off"}`,
    title: u ? u.presence : ""});
}

function renderSidebar() {
  const chans = [...S.channels.values()].filter((c) => !c.is_im)
    .sort((a, b) => a.name.localeCompare(b.name));
  $("#channels").replaceChildren(...chans.map((c) => h("li", {
    class: [c.id === S.current ? "active" : "", c.members.includes(S.me) ? "" : "dim",
      c.is_archived ? "archived" : ""].join(" "),
    "data-id": c.id, onclick: () => select(c.id)}, `# ${c.name}`)));
  const bots = [...S.users.values()].filter((u) => u.is_bot && !u.deleted);
  const people = [...S.users.values()].filter((u) => !u.is_bot && !u.deleted && u.id !== S.me);
  $("#dms").replaceChildren(
    ...bots.map((u) => {
      const im = [...S.channels.values()].find((c) => c.is_im && c.user === S.me);
      return h("li", {class: im && im.id === S.current ? "active" : "", "data-user": u.id,
        onclick: () => openIm()}, presenceDot(u.id), ` ${u.name}`, h("span", {class: "tag"}, "app"));
    }),
    ...people.map((u) => h("li", {class: "person", "data-user": u.id,
      title: "only the bot's direct messages are visible to it"}, presenceDot(u.id), ` ${u.name}`)));
  const me = S.users.get(S.me);
  $("#presence").value = me ? me.presence : "active";
}

async function openIm() {
  if (S.users.get(S.me)?.is_bot) { toast("pick a person to talk to the bot"); return; }
  const im = [...S.channels.values()].find((c) => c.is_im && c.user === S.me);
  if (im) { select(im.id); return; }
  const r = await api("open_im", {user: S.me});
  if (r.ok) {
    if (!S.channels.has(r.channel)) {
      S.channels.set(r.channel, {id: r.channel, is_im: true, user: S.me, members: [S.bot, S.me]});
    }
    select(r.channel);
  }
}

function select(cid) {
  S.current = cid;
  S.thread = null;
  render();
  renderThread();
  $("#text").focus();
}

function renderHeader() {
  const c = S.channels.get(S.current);
  $("#conv-title").textContent = channelLabel(c);
  const button = $("#join-leave");
  if (!c || c.is_im) {
    $("#conv-members").textContent = "";
    button.hidden = true;
    return;
  }
  $("#conv-members").textContent = `${c.members.length} members` +
    (c.members.includes(S.bot) ? "" : " · the bot is not in this channel");
  button.hidden = false;
  const member = c.members.includes(S.me);
  button.textContent = member ? `Leave #${c.name}` : `Join #${c.name}`;
  button.dataset.action = member ? "leave" : "join";
  $("#text").placeholder = `Message ${channelLabel(c)} as ${userName(S.me)} (Enter sends; ` +
    "@alice mentions; /echo hi runs a slash command)";
}

function renderMessages() {
  const box = $("#messages");
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  const list = history(S.current).filter((m) => !m.thread_ts || m.thread_ts === m.ts);
  const notes = (S.notes.get(S.current) || []).filter((n) => n.user === S.me || n.kind === "ack");
  box.replaceChildren(...list.map((m) => messageEl(m, false)), ...notes.map(noteEl));
  if (atEnd) box.scrollTop = box.scrollHeight;
  if (S.thread) renderThread();
}

function renderThread() {
  const pane = $("#thread");
  if (!S.thread) { pane.hidden = true; return; }
  pane.hidden = false;
  const list = history(S.current).filter((m) => m.ts === S.thread || m.thread_ts === S.thread);
  $("#thread-messages").replaceChildren(...list.map((m) => messageEl(m, true)));
}

function messageEl(m, inThread) {
  const uid = m.user || m.bot_id;
  const user = S.users.get(m.user);
  const mine = m.user === S.me;
  const replies = inThread ? [] : history(S.current).filter((r) => r.thread_ts === m.ts && r.ts !== m.ts);
  const el = h("div", {class: `message${user && user.is_bot ? " bot" : ""}`, "data-ts": m.ts,
    "data-user": m.user || ""},
    h("div", {class: "avatar"}, (userName(uid) || "?").slice(0, 1).toUpperCase()),
    h("div", {class: "body"},
      h("div", {class: "meta"},
        h("span", {class: "author"}, userName(uid)),
        user && user.is_bot ? h("span", {class: "tag"}, "app") : null,
        h("span", {class: "time", title: m.ts}, clock(m.ts)),
        m.edited ? h("span", {class: "dim"}, "(edited)") : null,
        m.subtype ? h("span", {class: "dim"}, m.subtype) : null),
      // with blocks, the text is only the notification's fallback: Slack shows the blocks
      S.editing === m.ts ? editor(m) : hasBlocks(m) ? null
        : h("div", {class: "text"}, mrkdwn(m.text || "")),
      hasBlocks(m) ? blocksEl(m) : null,
      reactionsEl(m),
      replies.length ? h("a", {class: "replies", href: "#", onclick: (e) => {
        e.preventDefault(); openThread(m.ts); }}, `${replies.length} repl${replies.length > 1 ? "ies" : "y"}`) : null),
    h("div", {class: "hover-actions"},
      ...QUICK.map((name) => h("button", {type: "button", class: "react",
        "data-reaction": name, title: `react :${name}:`,
        onclick: () => toggleReaction(m, name)}, emoji(name))),
      inThread ? null : h("button", {type: "button", class: "reply", title: "reply in thread",
        onclick: () => openThread(m.ts)}, "💬"),
      mine ? h("button", {type: "button", class: "edit", title: "edit",
        onclick: () => { S.editing = m.ts; renderMessages(); }}, "✏️") : null,
      mine || (user && user.is_bot) ? h("button", {type: "button", class: "delete",
        title: "delete", onclick: () => api("delete", {channel: S.current, ts: m.ts})}, "🗑") : null));
  return el;
}

function hasBlocks(m) { return Array.isArray(m.blocks) && m.blocks.length > 0; }

function editor(m) {
  const area = h("textarea", {class: "edit-text", rows: 2});
  area.value = m.text || "";
  const save = () => { S.editing = null; api("edit", {as: S.me, channel: S.current, ts: m.ts,
    text: area.value}); };
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save(); }
    if (e.key === "Escape") { S.editing = null; renderMessages(); }
  });
  setTimeout(() => area.focus(), 0);
  return h("div", {class: "editor"}, area,
    h("button", {type: "button", class: "save", onclick: save}, "Save"),
    h("button", {type: "button", onclick: () => { S.editing = null; renderMessages(); }}, "Cancel"));
}

function noteEl(n) {
  if (n.kind === "ephemeral") {
    return h("div", {class: "message ephemeral", "data-kind": "ephemeral"},
      h("div", {class: "avatar"}, userName(n.from).slice(0, 1).toUpperCase()),
      h("div", {class: "body"},
        h("div", {class: "meta"}, h("span", {class: "author"}, userName(n.from)),
          h("span", {class: "tag"}, "app"), h("span", {class: "dim"}, "Only visible to you")),
        hasBlocks(n) ? blocksEl({blocks: n.blocks, ts: null})
          : h("div", {class: "text"}, mrkdwn(n.text || ""))));
  }
  return h("div", {class: `note ${n.kind}`, "data-kind": n.kind},
    n.kind === "command" ? `${userName(n.user)} ran ${n.text}` : `↳ the app ${n.text}`);
}

function clock(ts) {
  const d = new Date(parseFloat(ts) * 1000);
  return isNaN(d) ? "" : d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}

function emoji(name) { return EMOJI[name] || `:${name}:`; }

function reactionsEl(m) {
  if (!m.reactions || !m.reactions.length) return null;
  return h("div", {class: "reactions"}, ...m.reactions.map((r) => h("button", {type: "button",
    class: `reaction${r.users.includes(S.me) ? " mine" : ""}`, "data-reaction": r.name,
    title: r.users.map(userName).join(", "), onclick: () => toggleReaction(m, r.name)},
  `${emoji(r.name)} ${r.count}`)));
}

function toggleReaction(m, name) {
  const r = (m.reactions || []).find((x) => x.name === name);
  api("react", {as: S.me, channel: S.current, ts: m.ts, name,
    remove: !!(r && r.users.includes(S.me))});
}

function openThread(ts) {
  S.thread = ts;
  renderThread();
  $("#thread-text").focus();
}

// -- Slack's text format and blocks -------------------------------------------------------
function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function styled(text) {
  // text arrives with Slack's escapes (&lt; &gt; &amp;): undo them, then escape for HTML
  const plain = text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  return escapeHtml(plain)
    .replace(/```([\s\S]+?)```/g, "<pre>$1</pre>")
    .replace(/`([^`\n]+)`/g, "<code>$1</code>")
    .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<b>$2</b>")
    .replace(/(^|[\s(])_([^_\n]+)_/g, "$1<i>$2</i>")
    .replace(/(^|[\s(])~([^~\n]+)~/g, "$1<s>$2</s>")
    .replace(/\n/g, "<br>");
}

function mrkdwn(text) {
  const span = document.createElement("span");
  let html = "";
  for (const [i, part] of String(text).split(/<([^<>\s][^<>]*)>/).entries()) {
    if (i % 2 === 0) { html += styled(part); continue; }
    const [target, label] = part.split("|", 2);
    if (target.startsWith("@")) {
      html += `<span class="mention">@${escapeHtml(userName(target.slice(1)))}</span>`;
    } else if (target.startsWith("#")) {
      const c = S.channels.get(target.slice(1));
      html += `<span class="mention">#${escapeHtml(label || (c && c.name) || target.slice(1))}</span>`;
    } else if (target.startsWith("!")) {
      html += `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
    } else if (/^(https?|mailto):/.test(target)) {
      html += `<a href="${escapeHtml(target)}" target="_blank" rel="noopener noreferrer">` +
        `${escapeHtml(label || target)}</a>`;
    } else {
      html += escapeHtml(`<${part}>`);
    }
  }
  span.innerHTML = html;
  return span;
}

function textObj(t) {
  if (!t) return null;
  if (typeof t === "string") return mrkdwn(t);
  return t.type === "mrkdwn" ? mrkdwn(t.text || "") : h("span", {}, t.text || "");
}

function blocksEl(m) {
  return h("div", {class: "blocks"}, ...m.blocks.map((b, i) => blockEl(b, i, m)));
}

function blockEl(b, i, m) {
  const bid = b && (b.block_id || `b${i}`);
  switch (b && b.type) {
    case "section":
      return h("div", {class: "block section", "data-block-id": bid},
        h("div", {class: "section-text"}, textObj(b.text),
          b.fields ? h("div", {class: "fields"}, ...b.fields.map((f) => h("div", {}, textObj(f)))) : null),
        b.accessory ? elementEl(b.accessory, bid, m) : null);
    case "actions":
      return h("div", {class: "block actions", "data-block-id": bid},
        ...(b.elements || []).map((e) => elementEl(e, bid, m)));
    case "context":
      return h("div", {class: "block context", "data-block-id": bid},
        ...(b.elements || []).map((e) => e.type === "image"
          ? h("span", {class: "image-alt"}, `[${e.alt_text || "image"}]`) : textObj(e)));
    case "divider":
      return h("hr", {class: "block divider"});
    case "header":
      return h("h4", {class: "block header"}, textObj(b.text));
    default:
      return h("pre", {class: "block unknown", title: "a block the playground does not draw"},
        JSON.stringify(b, null, 2));
  }
}

function elementEl(e, bid, m) {
  if (e.type === "button") {
    return h("button", {type: "button", class: `block-button ${e.style || ""}`,
      "data-action-id": e.action_id, "data-block-id": bid, disabled: !m.ts,
      onclick: () => api("click", {as: S.me, channel: S.current, ts: m.ts,
        action_id: e.action_id, block_id: bid})}, e.text ? e.text.text : e.action_id);
  }
  if (e.type === "image") return h("span", {class: "image-alt"}, `[${e.alt_text || "image"}]`);
  return h("pre", {class: "block unknown"}, JSON.stringify(e, null, 2));
}

// -- connections and the event log --------------------------------------------------------
function renderConns() {
  const list = [...S.conns.values()].sort((a, b) => a.id - b.id);
  $("#conns").replaceChildren(...(list.length ? list.map((c) => h("li", {"data-id": c.id,
    "data-kind": c.kind, class: c.frozen ? "frozen" : ""},
  h("span", {class: `dot ${c.frozen ? "off" : "on"}`}),
  ` #${c.id} ${c.kind === "socket_mode" ? "Socket Mode" : "RTM"}${c.frozen ? " (frozen)" : ""}`))
    : [h("li", {class: "dim none"}, "no bot connected")]));
}

function addLog(e) {
  if (e.conn !== null && e.conn !== undefined && !S.conns.has(e.conn) && e.dir === "out"
      && e.what !== "close" && e.what !== "closed") {
    S.conns.set(e.conn, {id: e.conn, kind: e.kind, open: true, frozen: false});
    renderConns();
  }
  const quiet = ["ping", "pong"].includes(e.what);
  const t = new Date(e.time * 1000);
  const stamp = `${t.toLocaleTimeString([], {hour12: false})}.${String(t.getMilliseconds()).padStart(3, "0")}`;
  const who = ["api", "fault"].includes(e.kind) ? e.kind
    : `#${e.conn} ${e.kind === "socket_mode" ? "sm" : "rtm"}`;
  const arrow = e.dir === "in" ? "→" : "←";
  const text = e.text || "";
  const li = h("li", {class: `log ${e.dir} ${e.kind} ${quiet ? "quiet" : ""}`, "data-what": e.what,
    "data-kind": e.kind, title: e.dir === "in" ? "from the bot to Slack" : "from Slack to the bot"},
  h("span", {class: "stamp"}, stamp), h("span", {class: "who"}, who),
  h("span", {class: "arrow"}, arrow), h("span", {class: "what"}, e.what),
  e.outcome ? h("span", {class: e.outcome === "ok" ? "ok" : "err"}, e.outcome) : null,
  h("code", {class: "frame", onclick: (ev) => ev.currentTarget.classList.toggle("open")},
    text));
  const log = $("#log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 30;
  log.append(li);
  while (log.childElementCount > 1000) log.firstElementChild.remove();
  if (stick) log.scrollTop = log.scrollHeight;
}

// -- wiring -------------------------------------------------------------------------------
function send(textarea, threadTs) {
  const text = textarea.value.trim();
  if (!text) return;
  textarea.value = "";
  if (text.startsWith("/") && !threadTs) {
    api("slash", {as: S.me, channel: S.current, command: text});
  } else {
    api("post", {as: S.me, channel: S.current, text, thread_ts: threadTs || undefined});
  }
}

function enterSends(textarea, form) {
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
}

function wire() {
  $("#composer").addEventListener("submit", (e) => { e.preventDefault(); send($("#text")); });
  $("#thread-composer").addEventListener("submit", (e) => {
    e.preventDefault(); send($("#thread-text"), S.thread);
  });
  enterSends($("#text"), $("#composer"));
  enterSends($("#thread-text"), $("#thread-composer"));
  $("#close-thread").addEventListener("click", () => { S.thread = null; renderThread(); });
  $("#me").addEventListener("change", (e) => { S.me = e.target.value; render(); });
  $("#presence").addEventListener("change", (e) => api("presence",
    {user: S.me, presence: e.target.value}));
  $("#join-leave").addEventListener("click", (e) => api(e.target.dataset.action,
    {user: S.me, channel: S.current}));
  for (const b of document.querySelectorAll("[data-fault]")) {
    b.addEventListener("click", async () => {
      const r = await api("fault", {what: b.dataset.fault});
      if (r.ok) toast(`${b.dataset.fault}: ${r.connections.length} connection(s)`);
    });
  }
  $("#ratelimit").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("fault", {what: "ratelimit", method: $("#rl-method").value,
      retry_after: $("#rl-after").value});
    if (r.ok) toast(`the next ${r.method} answers ratelimited`);
  });
  $("#log-pings").addEventListener("change", (e) => {
    $("#log").classList.toggle("show-quiet", e.target.checked);
  });
  $("#log-clear").addEventListener("click", () => $("#log").replaceChildren());
}

wire();
connect();
