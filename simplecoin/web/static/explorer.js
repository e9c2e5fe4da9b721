// The dashboard updates itself: it polls the JSON API (/status, and /blocks when the tip moves) every
// 2 seconds and writes what it gets with textContent only -- never as markup -- so nothing from the chain or
// a peer can become HTML.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var POLL_MS = 2000;
  var HASH = /^[0-9a-f]{64}$/;
  var statusUrl = root.dataset.statusUrl;
  var blocksUrl = root.dataset.blocksUrl;
  var blockBase = root.dataset.blockBase;
  var latest = parseInt(root.dataset.latest, 10) || 10;
  var powLimit = BigInt("0x" + root.dataset.powLimit);
  var live = document.getElementById("live");
  var shownTip = (field("tip") || {}).textContent;

  function field(name) { return root.querySelector('[data-field="' + name + '"]'); }
  function setText(name, text) { var el = field(name); if (el && el.textContent !== text) el.textContent = text; }

  // Bitcoin's compact target (SetCompact), as simplecoin/pow.py decodes it.
  function bitsToTarget(bits) {
    var size = bits >>> 24, word = BigInt(bits & 0x007fffff);
    return size <= 3 ? word >> BigInt(8 * (3 - size)) : word << BigInt(8 * (size - 3));
  }
  // pow_limit / target, three decimals, truncated: the same digits the server prints.
  function difficulty(target) {
    if (target === 0n) target = 1n;
    var scaled = powLimit * 1000n / target;
    var whole = (scaled / 1000n).toLocaleString("en-US");
    return whole + "." + (scaled % 1000n).toString().padStart(3, "0");
  }
  function hashrate(rate) {
    var units = ["H/s", "kH/s", "MH/s", "GH/s"];
    for (var i = 0; i < units.length; i++) {
      if (rate < 1000 || i === units.length - 1) return rate.toFixed(1) + " " + units[i];
      rate /= 1000;
    }
  }
  function utc(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function short(text, keep) { return text.length <= keep ? text : text.slice(0, keep) + "\u2026"; }
  function cell(row, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }
  function link(parent, hash, text) {
    var a = document.createElement("a");
    a.href = blockBase + encodeURIComponent(hash);
    a.textContent = text;
    parent.appendChild(a);
    return a;
  }

  function showBlocks(blocks) {
    var body = document.getElementById("latest-blocks");
    var rows = [];
    blocks.forEach(function (b) {
      if (!HASH.test(b.hash) || typeof b.height !== "number") return;
      var tr = document.createElement("tr");
      tr.dataset.height = String(b.height);
      link(cell(tr), b.hash, String(b.height));
      link(cell(tr, "mono"), b.hash, short(b.hash, 20)).title = b.hash;
      cell(tr).textContent = utc(b.time);
      cell(tr, "num tx-count").textContent = typeof b.tx_count === "number" ? String(b.tx_count) : "";
      rows.push(tr);
    });
    var firstOld = body.rows.length ? body.rows[0].dataset.height : null;
    body.replaceChildren.apply(body, rows);
    rows.forEach(function (tr) {
      if (firstOld !== null && parseInt(tr.dataset.height, 10) > parseInt(firstOld, 10)) tr.className = "new";
    });
  }

  function update(status) {
    setText("network", String(status.network));
    setText("height", String(status.height));
    setText("hashrate", hashrate(Number(status.hashrate)));
    setText("mempool", status.mempool + " tx");
    setText("peers", String(status.peers));
    var target = bitsToTarget(status.bits);
    setText("bits", "0x" + status.bits.toString(16).padStart(8, "0"));
    setText("target", target.toString(16).padStart(64, "0"));
    setText("difficulty", difficulty(target));
    if (HASH.test(status.tip) && status.tip !== shownTip) {
      var tip = field("tip");
      tip.textContent = status.tip;
      tip.href = blockBase + encodeURIComponent(status.tip);
      shownTip = status.tip;
      // The blocks up to this status' height: a block mined between the two requests waits for the next poll,
      // so the list never runs ahead of the height shown beside it.
      return fetch(blocksUrl + "?limit=" + latest + "&start=" + status.height, { cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) { showBlocks(data.blocks || []); });
    }
  }

  function poll() {
    fetch(statusUrl, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(update)
      .then(function () {
        live.className = "live";
        live.textContent = "Live: updated " + new Date().toLocaleTimeString() + ", every 2 seconds.";
      })
      .catch(function () {
        live.className = "live stale";
        live.textContent = "The node does not answer; retrying every 2 seconds.";
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  setTimeout(poll, POLL_MS);
})();
