/* The member page: the genealogy tree's children on demand, and the section tabs.
   No library; the JSON comes from the admin's genealogy view (staff only). */
(function () {
  "use strict";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function toggleButton(child) {
    var b = el("button", "tree-toggle");
    b.type = "button";
    b.setAttribute("aria-expanded", "false");
    b.setAttribute("aria-label", "Show the referrals of " + child.email);
    return b;
  }

  function nodeFor(child) {
    var li = el("li", "tree-node");
    li.dataset.memberId = child.id;
    li.dataset.childrenUrl = child.children_url;
    li.appendChild(child.has_children ? toggleButton(child) : el("span", "tree-leaf"));
    var label = el("span", "tree-label");
    var a = el("a", null, child.name || child.email);
    a.href = child.url;
    a.title = child.email;
    label.appendChild(a);
    label.appendChild(document.createTextNode(" "));
    label.appendChild(el("span", "tree-meta", child.rank + " · PV " + child.pv + " · TV " + child.tv));
    li.appendChild(label);
    return li;
  }

  function moreItem(url) {
    var li = el("li", "tree-more");
    var b = el("button", "tree-more-button", "Show more referrals");
    b.type = "button";
    b.dataset.url = url;
    li.appendChild(b);
    return li;
  }

  function load(url, ul, busy) {
    busy.disabled = true;
    busy.classList.add("loading");
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        data.children.forEach(function (c) { ul.appendChild(nodeFor(c)); });
        if (data.next) ul.appendChild(moreItem(data.next));
      })
      .catch(function (err) {
        var li = el("li", "tree-error", "Could not load the referrals (" + err.message + ").");
        ul.appendChild(li);
      })
      .finally(function () {
        busy.disabled = false;
        busy.classList.remove("loading");
      });
  }

  function onTreeClick(event) {
    var toggle = event.target.closest(".tree-toggle");
    if (toggle) {
      var li = toggle.closest("li.tree-node");
      var ul = li.querySelector(":scope > ul.tree-children");
      var open = toggle.getAttribute("aria-expanded") === "true";
      if (open) {
        toggle.setAttribute("aria-expanded", "false");
        if (ul) ul.hidden = true;
        return;
      }
      if (ul) {
        ul.hidden = false;
        toggle.setAttribute("aria-expanded", "true");
        return;
      }
      ul = el("ul", "tree-children");
      li.appendChild(ul);
      load(li.dataset.childrenUrl, ul, toggle).then(function () {
        toggle.setAttribute("aria-expanded", "true");
      });
      return;
    }
    var more = event.target.closest(".tree-more-button");
    if (more) {
      var item = more.closest("li.tree-more");
      var list = item.parentNode;
      load(more.dataset.url, list, more).then(function () { item.remove(); });
    }
  }

  function setupTabs() {
    var tabs = document.querySelectorAll("#member-sections .member-tab");
    var panels = document.querySelectorAll("#member-sections .member-section");
    if (!tabs.length) return;
    document.getElementById("member-sections").classList.add("tabbed");
    function show(key, scroll) {
      var found = false;
      panels.forEach(function (p) {
        var on = p.dataset.section === key;
        p.hidden = !on;
        found = found || on;
      });
      if (!found) return false;
      tabs.forEach(function (t) {
        var on = t.dataset.tab === key;
        t.classList.toggle("active", on);
        t.setAttribute("aria-selected", on ? "true" : "false");
      });
      if (scroll) document.getElementById("member-sections").scrollIntoView({block: "start"});
      return true;
    }
    tabs.forEach(function (t) {
      t.addEventListener("click", function (e) {
        e.preventDefault();
        show(t.dataset.tab, false);
        history.replaceState(null, "", "#" + t.dataset.tab);
      });
    });
    function fromHash(scroll) {
      var key = (location.hash || "").slice(1);
      if (!show(key, scroll)) show(tabs[0].dataset.tab, false);
    }
    window.addEventListener("hashchange", function () { fromHash(true); });
    fromHash(!!location.hash);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var tree = document.getElementById("genealogy");
    if (tree) tree.addEventListener("click", onTreeClick);
    setupTabs();
  });
})();
