/* ShopDesk widget loader, for a shop's own pages:

     <script src="https://support.example.com/widget.js" data-lang="zh" async></script>

   It adds a floating chat button; the chat itself opens in an iframe of this server's page
   (so it runs on this server's origin, under its Content-Security-Policy, and needs no
   CORS). It touches nothing else on the shop's page: no globals but one guard, no HTML
   strings, styles set property by property. Options, as attributes of the script tag:
     data-lang="zh|en"         the chat's language (default: the shopper's browser)
     data-position="left"      the button's corner (default: right)
*/
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script || window.__shopdeskWidget) return; // loaded twice: one button is enough
  window.__shopdeskWidget = true;

  const base = new URL(".", script.src); // where the chat page lives: next to this file
  const lang = script.getAttribute("data-lang");
  const side = script.getAttribute("data-position") === "left" ? "left" : "right";
  const page = new URL(base.href);
  if (lang === "zh" || lang === "en") page.searchParams.set("lang", lang);
  page.searchParams.set("embed", "1");

  // The button's label. It lives here, not in the page's strings table, because this file
  // runs on the shop's page, which should not get that table's global.
  const zh = (lang || navigator.language || "").toLowerCase().startsWith("zh");
  const label = zh ? "在线客服" : "Chat with us";
  const closeLabel = zh ? "关闭对话" : "Close chat";
  const ACCENT = "#0b6e69";
  const PHONE = window.matchMedia("(max-width: 520px)");

  const button = document.createElement("button");
  button.type = "button";
  button.dataset.shopdesk = "toggle"; // a handle for the shop's own styles and tests
  button.setAttribute("aria-label", label);
  button.setAttribute("aria-expanded", "false");
  button.title = label;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "28");
  svg.setAttribute("height", "28");
  svg.setAttribute("aria-hidden", "true");
  const shape = document.createElementNS(ns, "path");
  shape.setAttribute("fill", "#ffffff");
  const BUBBLE = "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z";
  const CROSS =
    "M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3" +
    "l6.3 6.3 6.3-6.3z";
  shape.setAttribute("d", BUBBLE);
  svg.append(shape);
  button.append(svg);
  Object.assign(button.style, {
    position: "fixed",
    bottom: "20px",
    [side]: "20px",
    width: "60px",
    height: "60px",
    borderRadius: "50%",
    border: "0",
    padding: "0",
    background: ACCENT,
    boxShadow: "0 4px 14px rgba(0,0,0,.25)",
    cursor: "pointer",
    zIndex: "2147483000",
    display: "flex",
    alignItems: "center",
    justifyContent: "center",
  });

  let frame = null;

  function place() {
    if (!frame) return;
    const phone = PHONE.matches;
    Object.assign(frame.style, phone
      ? { top: "0", bottom: "0", left: "0", right: "0", width: "100%", height: "100%",
          borderRadius: "0" }
      : { top: "auto", bottom: "92px", left: side === "left" ? "20px" : "auto",
          right: side === "right" ? "20px" : "auto", width: "380px",
          height: "min(640px, calc(100vh - 120px))", borderRadius: "14px" });
    // On a phone the chat fills the screen and closes from its own header.
    button.style.display = phone && isOpen() ? "none" : "flex";
  }

  function isOpen() {
    return frame !== null && frame.style.display !== "none";
  }

  function open() {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.src = page.href;
      frame.title = label;
      Object.assign(frame.style, {
        position: "fixed",
        border: "0",
        background: "#f3f4f6",
        boxShadow: "0 8px 30px rgba(0,0,0,.25)",
        zIndex: "2147483001",
      });
      document.body.append(frame);
    }
    frame.style.display = "block";
    button.setAttribute("aria-expanded", "true");
    button.setAttribute("aria-label", closeLabel);
    button.title = closeLabel;
    shape.setAttribute("d", CROSS);
    place();
  }

  function close() {
    if (frame) frame.style.display = "none";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-label", label);
    button.title = label;
    shape.setAttribute("d", BUBBLE);
    place();
    button.focus();
  }

  button.addEventListener("click", () => (isOpen() ? close() : open()));
  // The chat page's own close button (shown inside this widget only) asks for this.
  window.addEventListener("message", (event) => {
    if (frame && event.source === frame.contentWindow && event.origin === base.origin &&
        event.data === "shopdesk:close") {
      close();
    }
  });
  PHONE.addEventListener("change", place);

  function mount() {
    document.body.append(button);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
