// 连心 resident app: the HTTP API's client for a cheap phone on 2G, offline first.
// No rules live here: statuses, deadlines and refusals come from the API; words from the shell.
// Reads are kept in IndexedDB and shown when the link is down; writes made offline wait in
// IndexedDB under a client-generated key and are sent once (Idempotency-Key, or the
// petition's own id), in order, when the link returns.
'use strict';
(function () {
  const W = JSON.parse(document.body.dataset.words || '{}');
  const view = document.getElementById('view');
  const tabs = document.getElementById('tabs');
  let S = null; // {access_token, refresh_token, me}
  let flushing = false;
  let stale = false; // the page shows kept data, not fresh

  // ---- IndexedDB: 'kv' (session, kept reads) and 'q' (waiting writes, by key) ----
  let dbp = null;
  function db() {
    if (!dbp) {
      dbp = new Promise((ok, fail) => {
        const r = indexedDB.open('lianxin', 1);
        r.onupgradeneeded = () => {
          r.result.createObjectStore('kv');
          r.result.createObjectStore('q', { keyPath: 'k' });
        };
        r.onsuccess = () => ok(r.result);
        r.onerror = () => fail(r.error);
      });
    }
    return dbp;
  }
  async function tx(store, mode, fn) {
    const d = await db();
    return new Promise((ok, fail) => {
      const t = d.transaction(store, mode);
      const r = fn(t.objectStore(store));
      t.oncomplete = () => ok(r && r.result);
      t.onerror = () => fail(t.error);
    });
  }
  const kvGet = (k) => tx('kv', 'readonly', (s) => s.get(k));
  const kvPut = (k, v) => tx('kv', 'readwrite', (s) => s.put(v, k));
  const qAll = () => tx('q', 'readonly', (s) => s.getAll());
  const qPut = (it) => tx('q', 'readwrite', (s) => s.put(it));
  const qDel = (k) => tx('q', 'readwrite', (s) => s.delete(k));

  // ---- ids: random keys, and bs58check document ids (16 random bytes) ----
  const rand = (n) => crypto.getRandomValues(new Uint8Array(n));
  const key = () => Array.from(rand(12), (b) => b.toString(16).padStart(2, '0')).join('');
  function sha256(m) {
    const K = [], H = [];
    let p = 2;
    for (let n = 0; n < 64; p++) {
      let prime = true;
      for (let d = 2; d * d <= p; d++) if (p % d === 0) { prime = false; break; }
      if (prime) {
        if (n < 8) H[n] = (Math.pow(p, 1 / 2) * 4294967296) | 0;
        K[n++] = (Math.pow(p, 1 / 3) * 4294967296) | 0;
      }
    }
    const l = m.length, w = new Uint32Array(((l + 9 + 63) >> 6) << 4);
    for (let i = 0; i < l; i++) w[i >> 2] |= m[i] << (24 - (i % 4) * 8);
    w[l >> 2] |= 0x80 << (24 - (l % 4) * 8);
    w[w.length - 1] = l * 8;
    const r = (x, n) => (x >>> n) | (x << (32 - n));
    for (let j = 0; j < w.length; j += 16) {
      const a = H.slice(), x = new Array(64);
      for (let i = 0; i < 64; i++) {
        if (i < 16) x[i] = w[j + i];
        else {
          const s0 = r(x[i - 15], 7) ^ r(x[i - 15], 18) ^ (x[i - 15] >>> 3);
          const s1 = r(x[i - 2], 17) ^ r(x[i - 2], 19) ^ (x[i - 2] >>> 10);
          x[i] = (x[i - 16] + s0 + x[i - 7] + s1) | 0;
        }
        const t1 = (a[7] + (r(a[4], 6) ^ r(a[4], 11) ^ r(a[4], 25)) + ((a[4] & a[5]) ^ (~a[4] & a[6])) + K[i] + x[i]) | 0;
        const t2 = ((r(a[0], 2) ^ r(a[0], 13) ^ r(a[0], 22)) + ((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]))) | 0;
        a.unshift((t1 + t2) | 0);
        a[4] = (a[4] + t1) | 0;
        a.pop();
      }
      for (let i = 0; i < 8; i++) H[i] = (H[i] + a[i]) | 0;
    }
    const out = new Uint8Array(32);
    H.forEach((h, i) => { for (let b = 0; b < 4; b++) out[i * 4 + b] = (h >>> (24 - b * 8)) & 255; });
    return out;
  }
  function docId() {
    const b = rand(16), c = sha256(sha256(b)), all = [...b, ...c.slice(0, 4)];
    const A = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
    let n = 0n, s = '';
    for (const x of all) n = n * 256n + BigInt(x);
    while (n > 0n) { s = A[Number(n % 58n)] + s; n /= 58n; }
    for (const x of all) { if (x) break; s = '1' + s; }
    return s;
  }

  // ---- the API ----
  async function call(method, path, body, idem, retried) {
    const h = { accept: 'application/json' };
    if (body !== undefined) h['content-type'] = 'application/json';
    if (S) h.authorization = 'Bearer ' + S.access_token;
    if (idem) h['idempotency-key'] = idem;
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401 && S && !retried && path.indexOf('/api/auth/') !== 0) {
      if (await renew()) return call(method, path, body, idem, true);
      await signOut(false);
    }
    return { ok: r.ok, status: r.status, data };
  }
  async function renew() {
    try {
      const r = await fetch('/api/auth/refresh', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: S.refresh_token }),
      });
      if (!r.ok) return false;
      const t = await r.json();
      S.access_token = t.access_token; S.refresh_token = t.refresh_token;
      await kvPut('session', S);
      return true;
    } catch (e) { return false; }
  }
  // A read: fresh from the API when the link allows, else what was kept.
  async function read(path) {
    try {
      const r = await call('GET', path);
      if (r.ok) { await kvPut('GET ' + path, r.data); return r.data; }
      if (r.status < 500) throw new Error(why(r.data));
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
    }
    const kept = await kvGet('GET ' + path);
    if (kept === undefined) throw new Error('没有网络，这一页还没有保存过。');
    stale = true;
    return kept;
  }
  function why(d) {
    const e = d && d.error;
    if (!e) return '服务器没有回答。';
    const rules = (e.refused || []).map((x) => W.rule[x.rule] || x.rule);
    if (e.rule) rules.push(W.rule[e.rule] || e.rule);
    return rules.length ? rules.join('；') : (W.error && W.error[e.code]) || e.message;
  }

  // ---- waiting writes ----
  async function queue(it) {
    it.k = it.k || key();
    it.t = Date.now();
    it.state = 'wait';
    await qPut(it);
    flush();
  }
  async function flush() {
    if (flushing || !S) return;
    flushing = true;
    let sent = 0;
    try {
      for (const it of (await qAll()).sort((a, b) => a.t - b.t)) {
        if (it.state !== 'wait') continue;
        let r;
        try { r = await call('POST', it.path, it.body, it.k); } catch (e) { break; }
        if (r.ok) { await qDel(it.k); sent++; }
        else if (r.status >= 500 || r.status === 408 || r.status === 429 || r.status === 401) break;
        else { it.state = 'refused'; it.reason = why(r.data); await qPut(it); sent++; }
      }
    } finally { flushing = false; }
    net();
    if (sent) route();
  }
  async function waiting(filter) {
    return (await qAll()).filter(filter).sort((a, b) => a.t - b.t);
  }
  // What waits, on the page it belongs to; what the server refused is shown on every page
  // (refused()), since the page it came from may be gone (a room one was removed from).
  function pending(items) {
    return items.filter((it) => it.state === 'wait')
      .map((it) => `<div class="card"><b>${esc(it.label)}</b><span class="wait">待发送</span></div>`).join('');
  }
  async function refused() {
    return (await waiting((it) => it.state === 'refused')).map((it) => `<div class="card refused"><b>${esc(it.label)}</b>
      <span class="bad">未能发送：${esc(it.reason)}</span><button class="plain" data-drop="${it.k}">知道了</button></div>`).join('');
  }

  // ---- words ----
  const esc = (s) => String(s == null ? '' : s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const tz = { timeZone: 'Asia/Shanghai' };
  const day = (ms) => new Date(ms).toLocaleDateString('zh-CN', { ...tz, month: 'numeric', day: 'numeric' }).replace('/', '月') + '日';
  const time = (ms) => new Date(ms).toLocaleTimeString('zh-CN', { ...tz, hour: '2-digit', minute: '2-digit', hour12: false });
  const when = (ms) => day(ms) + ' ' + time(ms);
  const hlcMs = (at) => Number(String(at).split('.')[0]);
  function limitWords(l) {
    if (!l) return '';
    if (l.working_days) return l.working_days + '个工作日内';
    const m = l.wall_minutes;
    return (m % 60 ? m + '分钟' : m / 60 + '小时') + '内';
  }
  // "已签收，5个工作日内答复，截止 12月11日": the status, then the clock the API says is next due.
  function clockWords(s) {
    const st = W.status[s.status] || s.status;
    const state = (c) => (c.state && c.state.state) || c.state;
    const c = (s.clocks || []).find((c) => s.next_due && c.due_at === s.next_due && !/^met/.test(state(c)));
    if (!c) return esc(st);
    const what = W.clock[c.kind] || c.kind;
    const by = c.limit && c.limit.working_days ? day(c.due_at) : when(c.due_at);
    const late = state(c) === 'overdue' ? '<span class="bad">，已超时</span>' : '';
    return esc(`${st}，${limitWords(c.limit)}${what}，截止 ${by}`) + late;
  }

  // Why a timeline event was set aside, in the console's words: the rule, and the record it lost to.
  function aside(t, all) {
    if (t.outcome !== 'superseded') return '';
    const after = t.after && all.find((e) => e.id === t.after);
    return `<br><small class="why">未生效：${esc(W.rule[t.rule] || t.rule)}${after ? `（因 ${when(hlcMs(after.at))} 的记录）` : ''}</small>`;
  }
  // A name the API gave for a user id; "我" for the reader.
  const who = (id, names) => (id === S.me.id ? '我' : esc((names && names[id]) || id));

  // ---- pages ----
  const pages = {
    async login() {
      tabs.hidden = true;
      view.innerHTML = `<h1>居民登录</h1><p class="st">用手机号登录，我们会发一条验证码短信。</p>
        <form id="f1"><label for="phone">手机号</label><input id="phone" name="phone" inputmode="tel" autocomplete="tel" required>
        <button>获取验证码</button></form>
        <form id="f2" hidden><label for="code">验证码</label><input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" required>
        <button>登录</button></form><p id="msg"></p>`;
      const msg = document.getElementById('msg');
      const phone = document.getElementById('phone');
      document.getElementById('f1').onsubmit = async (e) => {
        e.preventDefault();
        try {
          const r = await call('POST', '/api/auth/otp/request', { phone: phone.value.trim() });
          if (!r.ok) { msg.innerHTML = `<span class="alert">${esc(why(r.data))}</span>`; return; }
          document.getElementById('f2').hidden = false;
          msg.textContent = '验证码已发送，请查看短信。';
        } catch (err) { msg.innerHTML = '<span class="alert">没有网络，请稍后再试。</span>'; }
      };
      document.getElementById('f2').onsubmit = async (e) => {
        e.preventDefault();
        try {
          const r = await call('POST', '/api/auth/otp/verify', { phone: phone.value.trim(), code: document.getElementById('code').value.trim() });
          if (!r.ok) { msg.innerHTML = `<span class="alert">${esc(why(r.data))}</span>`; return; }
          S = { access_token: r.data.access_token, refresh_token: r.data.refresh_token };
          const me = await call('GET', '/api/me');
          S.me = me.data;
          await kvPut('session', S);
          location.hash = '#/petitions';
        } catch (err) { msg.innerHTML = '<span class="alert">没有网络，请稍后再试。</span>'; }
      };
    },

    async petitions() {
      const base = '/api/petitions?limit=20&submitter=' + encodeURIComponent(S.me.id);
      const mine = await read(base);
      const q = await waiting((it) => it.kind === 'submit');
      const card = (p) => `<a class="card petition" href="#/p/${p.doc_id}"><b>${esc(p.title)}</b>
          <span class="st">${clockWords(p)}</span><br><small>${esc(W.channel[p.channel] || p.channel)} · ${p.submitted_at ? when(p.submitted_at) : ''}</small></a>`;
      view.innerHTML = `<h1>我的诉求</h1><a class="card" href="#/new" id="new"><b>＋ 我要反映</b><span class="st">找所长、找户户通民警或写信给局长</span></a>
        ${pending(q)}<div id="mine">${mine.items.map(card).join('')}</div>
        ${mine.items.length || q.length ? '' : '<p class="st">还没有诉求。</p>'}<button class="plain" id="more" hidden>更多</button>`;
      const more = document.getElementById('more');
      let next = mine.next;
      more.hidden = !next;
      more.onclick = async () => {
        more.disabled = true;
        try {
          const page = await read(base + '&before=' + encodeURIComponent(next));
          document.getElementById('mine').insertAdjacentHTML('beforeend', page.items.map(card).join(''));
          next = page.next;
        } catch (e) { more.insertAdjacentHTML('afterend', `<p class="alert">${esc(e.message)}</p>`); }
        more.disabled = false;
        more.hidden = !next;
      };
    },

    async new() {
      const villages = (S.me.memberships || []).filter((m) => m.role === 'resident').map((m) => m.unit);
      const opt = (o) => Object.keys(o).map((k) => `<option value="${k}">${esc(o[k])}</option>`).join('');
      const cats = {};
      ['help', 'consultation', 'complaint', 'report', 'lead', 'suggestion', 'non_police'].forEach((c) => { cats[c] = W.category[c] || c; });
      view.innerHTML = `<h1>我要反映</h1><form id="f">
        <label>找谁</label><div class="row">
          <label><input type="radio" name="channel" value="chief_line" checked>${esc(W.channel.chief_line)}（所长）</label>
          <label><input type="radio" name="channel" value="household_line">${esc(W.channel.household_line)}（我户的民警）</label>
          <label><input type="radio" name="channel" value="director_mailbox">${esc(W.channel.director_mailbox)}</label></div>
        <label for="category">什么事</label><select id="category" name="category">${opt(cats)}</select>
        <label for="title">标题</label><input id="title" name="title" maxlength="60" required>
        <label for="body">详细情况</label><textarea id="body" name="body" required></textarea>
        <label for="village">我所在的村</label><select id="village" name="village">${villages.map((v) => `<option>${esc(v)}</option>`).join('')}</select>
        <label><input type="checkbox" id="anonymous" name="anonymous">匿名（处理单位以外的人看不到我是谁）</label>
        <label for="contact">联系电话（选填）</label><input id="contact" name="contact" inputmode="tel">
        <button id="send">提交</button></form><p class="note">没有网络也能提交：会先存在手机上，显示“待发送”，有网时自动发出，只发一次。</p>`;
      document.getElementById('f').onsubmit = async (e) => {
        e.preventDefault();
        const f = e.target, id = docId();
        const body = {
          id, channel: f.channel.value, category: f.category.value, title: f.title.value.trim(), body: f.body.value.trim(),
          anonymous: f.anonymous.checked, location: { unit: f.village.value },
        };
        if (f.contact.value.trim()) body.contact = f.contact.value.trim();
        await queue({ k: id, kind: 'submit', path: '/api/petitions', body, label: body.title });
        location.hash = '#/petitions';
      };
    },

    async p(id) {
      const p = await read('/api/petitions/' + id);
      const s = p.summary;
      const q = await waiting((it) => it.pid === id);
      const done = /^(replied|closed)$/.test(s.status);
      const rated = s.rating != null || q.some((it) => it.kind === 'rate');
      view.innerHTML = `<h1>${esc(s.title)}</h1><p class="st" id="clock">${clockWords(s)}</p>
        <p>${esc(p.header.body)}</p>
        <h2>进展</h2><ol id="timeline">${p.timeline.map((t) => `<li${t.outcome === 'superseded' ? ' class="st"' : ''}>${when(hlcMs(t.at))} ${esc(W.event[t.kind] || t.kind)}${t.by === S.me.id ? '' : '（' + who(t.by, p.names) + '）'}${t.text ? '：' + esc(t.text) : ''}${t.note ? '：' + esc(t.note) : ''}${t.rating ? '：' + '★'.repeat(t.rating) : ''}${aside(t, p.timeline)}</li>`).join('')}</ol>
        <h2>对话</h2><div id="talk">${p.conversation.map((m) => `<div class="msg"><small>${who(m.by, p.names)} · ${when(hlcMs(m.at))}</small><br>${esc(m.text)}</div>`).join('') || '<p class="st">还没有对话。</p>'}</div>
        ${pending(q)}
        <form id="c"><label for="comment">补充或回复</label><textarea id="comment" name="comment" required></textarea><button>发送</button></form>
        ${done && !rated ? `<form id="r"><h2>评价处理结果</h2><div class="row">${[5, 4, 3, 2, 1].map((n) => `<label><input type="radio" name="rating" value="${n}"${n === 5 ? ' checked' : ''}>${'★'.repeat(n)}</label>`).join('')}</div>
          <label for="rcomment">说几句（选填）</label><input id="rcomment" name="rcomment"><button>提交评价</button></form>` : ''}`;
      document.getElementById('c').onsubmit = async (e) => {
        e.preventDefault();
        const text = e.target.comment.value.trim();
        await queue({ kind: 'comment', pid: id, path: `/api/petitions/${id}/actions`, body: { action: 'comment', text }, label: '我的留言：' + text });
        route();
      };
      const r = document.getElementById('r');
      if (r) r.onsubmit = async (e) => {
        e.preventDefault();
        const rating = Number(r.rating.value), comment = r.rcomment.value.trim();
        const body = { action: 'follow_up', rating };
        if (comment) body.comment = comment;
        await queue({ kind: 'rate', pid: id, path: `/api/petitions/${id}/actions`, body, label: '我的评价：' + '★'.repeat(rating) });
        route();
      };
    },

    async notices() {
      const list = await read('/api/notices');
      view.innerHTML = `<h1>通知</h1>${list.items.map((n) => `<a class="card notice" href="#/n/${n.id}"><b>${esc(n.title)}</b><small>${when(n.at)}</small></a>`).join('') || '<p class="st">没有通知。</p>'}`;
    },

    async n(id) {
      const n = await read('/api/notices/' + id);
      const mine = n.my_receipts || {};
      const q = await waiting((it) => it.pid === id);
      const has = (kind) => mine[kind] || q.some((it) => it.receipt === kind);
      view.innerHTML = `<h1>${esc(n.title)}</h1><p class="st">${when(n.at)}</p><p>${esc(n.body)}</p>
        <button id="fwd">转发给家人</button><p class="st" id="rc">${has('read') ? '已读' : ''}${has('forwarded') ? ' · 已转发' : ''}</p>`;
      const receipt = (kind, label) => queue({ kind: 'receipt', receipt: kind, pid: id, k: `${kind}-${id}`.replace(/[^A-Za-z0-9_-]/g, ''), path: `/api/notices/${id}/receipts`, body: { kind }, label });
      if (!has('read')) receipt('read', '已读回执：' + n.title);
      document.getElementById('fwd').onclick = async () => {
        const text = `${n.title}\n${n.body}`;
        try {
          if (navigator.share) await navigator.share({ title: n.title, text });
          else if (navigator.clipboard) await navigator.clipboard.writeText(text);
        } catch (e) { return; }
        await receipt('forwarded', '转发回执：' + n.title);
        route();
      };
    },

    async rooms() {
      const list = await read('/api/rooms');
      view.innerHTML = `<h1>村里</h1>${list.items.map((r) => `<a class="card room" href="#/r/${r.id}"><b>${esc(r.name)}</b><small>${r.kind === 'household_line' ? '我户与民警的一对一联系' : '村里的议事群'}</small></a>`).join('') || '<p class="st">还没有加入群。</p>'}`;
    },

    async r(id) {
      const room = await read('/api/rooms/' + id);
      const page = await read(`/api/rooms/${id}/messages?latest=true&limit=50`);
      const q = await waiting((it) => it.pid === id);
      const officers = room.members.filter((m) => (m.role === 'owner' || m.role === 'moderator') && m.user !== S.me.id).map((m) => m.user);
      const msgs = (p) => p.items.map((m) => `<div class="msg"><small>${who(m.by, p.names)} · ${when(hlcMs(m.at))}</small><br>${m.redacted ? '<span class="st">（已撤下）</span>' : esc(m.text)}</div>`).join('');
      view.innerHTML = `<h1>${esc(room.name)}</h1><button class="plain" id="earlier" hidden>查看更早的消息</button><div id="msgs">${msgs(page)}</div>
        ${pending(q)}
        <form id="m"><label for="text">说点什么</label><textarea id="text" name="text" required></textarea>
        ${officers.length ? `<label><input type="checkbox" name="at" id="at">@我的民警（${officers.map((o) => who(o, room.names)).join('、')}）</label>` : ''}<button>发送</button></form>`;
      const earlier = document.getElementById('earlier');
      let before = page.earlier;
      earlier.hidden = !before;
      earlier.onclick = async () => {
        earlier.disabled = true;
        try {
          const p = await read(`/api/rooms/${id}/messages?before=${encodeURIComponent(before)}&limit=50`);
          document.getElementById('msgs').insertAdjacentHTML('afterbegin', msgs(p));
          before = p.earlier;
        } catch (e) { earlier.insertAdjacentHTML('afterend', `<p class="alert">${esc(e.message)}</p>`); }
        earlier.disabled = false;
        earlier.hidden = !before;
      };
      document.getElementById('m').onsubmit = async (e) => {
        e.preventDefault();
        const f = e.target, text = f.text.value.trim();
        const body = { text, mentions: f.at && f.at.checked ? officers : [] };
        await queue({ kind: 'post', pid: id, path: `/api/rooms/${id}/messages`, body, label: '我的发言：' + text });
        route();
      };
    },

    async board() {
      const b = await read('/api/board');
      view.innerHTML = `<h1>公开晒单</h1>${b.items.map((i) => `<div class="card"><b>${esc(i.title)}</b><span class="st">${esc(W.category[i.category] || i.category)}${i.rating ? ' · ' + '★'.repeat(i.rating) : ''}</span><p>${esc(i.publication)}</p></div>`).join('') || '<p class="st">还没有公开的办理结果。</p>'}`;
    },
  };

  async function signOut(wipe) {
    S = null;
    await kvPut('session', null);
    if (wipe) location.hash = '#/login';
  }

  function net() {
    qAll().then((q) => {
      const w = q.filter((it) => it.state === 'wait').length;
      document.getElementById('net').textContent = (navigator.onLine ? '' : '离线') + (w ? ` ${w}条待发送` : '') + (stale && navigator.onLine ? '' : '');
    });
  }

  async function route() {
    const [, name, arg] = (location.hash || '#/petitions').split('/');
    if (!S) S = await kvGet('session');
    if (!S && name !== 'login') { location.hash = '#/login'; return; }
    document.getElementById('who').textContent = S && S.me ? S.me.display_name : '';
    tabs.hidden = !S;
    tabs.querySelectorAll('a').forEach((a) => a.classList.toggle('on', a.hash === '#/' + name));
    stale = false;
    try {
      await (pages[name] || pages.petitions)(arg);
      if (stale) view.insertAdjacentHTML('afterbegin', '<p class="note" id="stale">现在没有网络，显示的是上次保存的内容。</p>');
    } catch (e) {
      view.innerHTML = `<p class="alert">${esc(e.message)}</p>`;
    }
    if (S) view.insertAdjacentHTML('afterbegin', await refused());
    view.querySelectorAll('[data-drop]').forEach((b) => { b.onclick = async () => { await qDel(b.dataset.drop); route(); }; });
    net();
    document.body.dataset.ready = name || 'petitions';
  }

  window.addEventListener('hashchange', route);
  window.addEventListener('online', () => { net(); flush(); });
  window.addEventListener('offline', net);
  setInterval(flush, 30000);
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => {});
  route().then(flush);
})();
