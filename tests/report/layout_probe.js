// Injected into a copy of the report by test_report_screenshot.py (the report itself has no
// script): once the page has loaded, measure its layout and append it as JSON in <pre id=layout-probe>.
window.addEventListener("load", () => {
  const vw = document.documentElement.clientWidth;
  const inScroll = el => { for (let p = el.parentElement; p; p = p.parentElement) { if (p.classList && p.classList.contains("scroll")) return true; } return false; };
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > vw + 1 && !inScroll(el)) wide.push(el.tagName + "." + el.className + "#" + el.id);
  }
  const top = id => { const e = document.getElementById(id); return e ? e.getBoundingClientRect().top + window.scrollY : null; };
  const v = document.getElementById("verdict").getBoundingClientRect();
  const out = {viewport: vw, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 20),
    verdict: [v.top + window.scrollY, v.bottom + window.scrollY],
    sections: [...document.querySelectorAll("section")].map(s => [s.id, s.getBoundingClientRect().top + window.scrollY]),
    height: document.documentElement.scrollHeight,
    images: [...document.querySelectorAll("img:not(.thumb)")].map(i => { const r = i.getBoundingClientRect();
      return [i.dataset.file, r.left, r.top + window.scrollY, r.width, r.height, i.naturalWidth]; }),
    scrolls: [...document.querySelectorAll("div.scroll")].map(d => [getComputedStyle(d).overflowX, d.scrollWidth > d.clientWidth])};
  const pre = document.createElement("pre"); pre.id = "layout-probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
