// The meter filter editor (R-M3): groups of conditions joined by AND or OR, nested, written
// as the filter JSON of API.md into the form's textarea, which stays the submitted value and
// the "raw JSON" fallback. The server (Meter.clean / parse_filter) remains the judge.
//
// Values: text that reads as a JSON number (42, -1.5, 1e3) is stored as a number, written
// digit for digit (no float rounding); true and false are booleans; anything else is a
// string, and double quotes around a value ("42") keep it a string.
(function () {
  "use strict";

  const OPERATORS = [
    ["equals", "equals"],
    ["not_equals", "does not equal"],
    ["greater_than", "is greater than"],
    ["greater_than_or_equals", "is greater than or equal to"],
    ["less_than", "is less than"],
    ["less_than_or_equals", "is less than or equal to"],
    ["contains", "contains"],
    ["does_not_contain", "does not contain"],
  ];
  const OPERATOR_NAMES = OPERATORS.map(function (o) { return o[0]; });
  const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

  // ------------------------------------------------------------------ values <-> text

  function valueLiteral(text) {
    if (NUMBER.test(text) || text === "true" || text === "false") {
      return text;
    }
    if (text.length >= 2 && text[0] === '"' && text[text.length - 1] === '"') {
      return JSON.stringify(text.slice(1, -1));
    }
    return JSON.stringify(text);
  }

  function valueText(value) {
    if (value !== null && typeof value === "object" && "number" in value) {
      return value.number;
    }
    if (typeof value === "boolean") {
      return String(value);
    }
    const s = value;
    const misread = NUMBER.test(s) || s === "true" || s === "false" ||
      (s.length >= 2 && s[0] === '"' && s[s.length - 1] === '"');
    return misread ? '"' + s + '"' : s;
  }

  // Numbers keep their source text (JSON.parse's reviver context, where the browser has it)
  // so 12345678901234567890 or 0.10 round-trip exactly.
  function parseKeepingNumbers(text) {
    return JSON.parse(text, function (key, value, context) {
      if (typeof value === "number") {
        return { number: context && context.source !== undefined ? context.source : String(value) };
      }
      return value;
    });
  }

  // ------------------------------------------------------------------ DOM

  function element(tag, attrs, children) {
    const el = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function (entry) {
      if (entry[0] === "text") {
        el.textContent = entry[1];
      } else {
        el.setAttribute(entry[0], entry[1]);
      }
    });
    (children || []).forEach(function (child) { el.appendChild(child); });
    return el;
  }

  function button(label, action) {
    return element("button", { type: "button", class: "kota-filter-button", "data-action": action, text: label });
  }

  function conditionRow(condition) {
    const operator = element("select", { "data-field": "operator", "aria-label": "Comparator" },
      OPERATORS.map(function (o) { return element("option", { value: o[0], text: o[1] }); }));
    operator.value = condition.operator || "equals";
    const property = element("input", { type: "text", "data-field": "property", "aria-label": "Property", placeholder: "property, e.g. user.tier" });
    property.value = condition.property || "";
    const value = element("input", { type: "text", "data-field": "value", "aria-label": "Value", placeholder: 'value: 42, true, premium, "42"' });
    value.value = condition.value === undefined ? "" : valueText(condition.value);
    return element("div", { class: "kota-filter-condition", "data-node": "condition" },
      [property, operator, value, button("Remove", "remove")]);
  }

  function groupBox(group, isRoot) {
    const conjunction = element("select", { "data-field": "conjunction", "aria-label": "Join with" }, [
      element("option", { value: "and", text: "ALL of (AND)" }),
      element("option", { value: "or", text: "ANY of (OR)" }),
    ]);
    conjunction.value = group.conjunction || "and";
    const header = element("div", { class: "kota-filter-group-header" }, [
      element("span", { text: isRoot ? "Count events matching" : "Group: matching" }),
      conjunction,
      button("Add condition", "add-condition"),
      button("Add group", "add-group"),
    ]);
    if (!isRoot) {
      header.appendChild(button("Remove group", "remove"));
    }
    const clauses = element("div", { class: "kota-filter-clauses" });
    (group.clauses || []).forEach(function (clause) {
      clauses.appendChild("clauses" in clause ? groupBox(clause, false) : conditionRow(clause));
    });
    return element("div", { class: "kota-filter-group", "data-node": "group", role: "group" }, [header, clauses]);
  }

  function checkGroup(group, path) {
    if (group === null || typeof group !== "object" || Array.isArray(group) ||
        !["and", "or"].includes(group.conjunction) || !Array.isArray(group.clauses) ||
        Object.keys(group).some(function (k) { return k !== "conjunction" && k !== "clauses"; })) {
      throw new Error((path || "the filter") + " is not a group of conditions");
    }
    group.clauses.forEach(function (clause, i) {
      const where = (path ? path + "." : "") + "clauses[" + i + "]";
      if (clause !== null && typeof clause === "object" && "clauses" in clause) {
        checkGroup(clause, where);
      } else if (clause === null || typeof clause !== "object" || typeof clause.property !== "string" ||
          !OPERATOR_NAMES.includes(clause.operator) ||
          !(typeof clause.value === "string" || typeof clause.value === "boolean" ||
            (clause.value !== null && typeof clause.value === "object" && "number" in clause.value)) ||
          Object.keys(clause).length !== 3) {
        throw new Error(where + " cannot be shown as a condition");
      }
    });
  }

  function groupJson(box) {
    const conjunction = box.querySelector(":scope > .kota-filter-group-header [data-field=conjunction]").value;
    const clauses = Array.from(box.querySelector(":scope > .kota-filter-clauses").children).map(function (child) {
      if (child.dataset.node === "group") {
        return groupJson(child);
      }
      const field = function (name) { return child.querySelector("[data-field=" + name + "]").value; };
      return '{"property": ' + JSON.stringify(field("property")) + ', "operator": ' +
        JSON.stringify(field("operator")) + ', "value": ' + valueLiteral(field("value")) + "}";
    });
    return '{"conjunction": ' + JSON.stringify(conjunction) + ', "clauses": [' + clauses.join(", ") + "]}";
  }

  // ------------------------------------------------------------------ one editor

  function setUp(editor) {
    const textarea = editor.querySelector("textarea");
    const tree = editor.querySelector("[data-filter-tree]");
    const toolbar = editor.querySelector("[data-filter-toolbar]");
    const toggle = editor.querySelector("[data-filter-raw-toggle]");
    const message = editor.querySelector("[data-filter-message]");
    let structured = false;

    function sync() {
      if (!structured) {
        return;
      }
      const root = tree.firstElementChild;
      const empty = root.querySelector(":scope > .kota-filter-clauses").children.length === 0;
      textarea.value = empty ? "null" : groupJson(root);
    }

    function showEditor() {
      const text = textarea.value.trim();
      let filter = { conjunction: "and", clauses: [] };
      if (text !== "" && text !== "null") {
        filter = parseKeepingNumbers(text); // throws on bad JSON
        checkGroup(filter, "");
      }
      tree.replaceChildren(groupBox(filter, true));
      structured = true;
      tree.hidden = false;
      textarea.hidden = true;
      toggle.textContent = "Edit as raw JSON";
      message.textContent = "";
    }

    function showRaw(reason) {
      sync();
      structured = false;
      tree.hidden = true;
      textarea.hidden = false;
      toggle.textContent = "Use the editor";
      message.textContent = reason || "";
    }

    tree.addEventListener("click", function (event) {
      const action = event.target.dataset && event.target.dataset.action;
      if (!action) {
        return;
      }
      const node = event.target.closest("[data-node]");
      if (action === "remove") {
        node.remove();
      } else {
        const clauses = node.querySelector(":scope > .kota-filter-clauses");
        const added = action === "add-group"
          ? groupBox({ conjunction: "or", clauses: [{}] }, false)
          : conditionRow({});
        clauses.appendChild(added);
        added.querySelector("input").focus();
      }
      sync();
    });
    tree.addEventListener("input", sync);
    tree.addEventListener("change", sync);
    toggle.addEventListener("click", function () {
      if (!structured) {
        try {
          showEditor();
        } catch (error) {
          message.textContent = "Cannot show this in the editor: " + error.message;
        }
      } else {
        showRaw("");
      }
    });
    if (textarea.form) {
      textarea.form.addEventListener("submit", sync);
    }

    toolbar.hidden = false;
    try {
      showEditor();
    } catch (error) {
      showRaw("Shown as raw JSON: " + error.message);
    }
  }

  function setUpAll() {
    document.querySelectorAll("[data-filter-editor]").forEach(setUp);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpAll);
  } else {
    setUpAll();
  }
})();
