/* Landing page: the snippets follow the organisation typed in (remembered in this browser; it is
 * not a secret), and each copies with one click. */
(() => {
  "use strict";
  const input = document.getElementById("snippet-org");
  const SLUG = /^[a-z0-9_-]{1,64}$/;
  const STORE = "faceportal.organization";

  function apply(slug) {
    document.querySelectorAll(".snippet .org").forEach((node) => { node.textContent = slug; });
  }

  try {
    const saved = localStorage.getItem(STORE);
    if (saved && SLUG.test(saved) && !new URLSearchParams(location.search).get("org")) input.value = saved;
  } catch (err) { /* storage disabled: the default stays */ }
  const fromQuery = new URLSearchParams(location.search).get("org");
  if (fromQuery && SLUG.test(fromQuery)) input.value = fromQuery;
  if (SLUG.test(input.value)) apply(input.value);

  input.addEventListener("input", () => {
    const slug = input.value.trim();
    if (!SLUG.test(slug)) return;
    apply(slug);
    try { localStorage.setItem(STORE, slug); } catch (err) { /* ignore */ }
  });

  document.querySelectorAll("button.copy").forEach((button) => {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (err) {
        const area = document.createElement("textarea");
        area.value = text;
        document.body.append(area);
        area.select();
        ok = document.execCommand && document.execCommand("copy");
        area.remove();
      }
      button.textContent = ok ? "Copied" : "Select and copy";
      button.classList.toggle("copied", ok);
      setTimeout(() => { button.textContent = "Copy"; button.classList.remove("copied"); }, 2000);
    });
  });
})();
