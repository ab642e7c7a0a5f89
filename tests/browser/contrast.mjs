// WCAG 2.1 contrast, measured in the page: every visible text (and the
// colored status dots, as non-text indicators) against the background it
// really sits on, composited up the ancestors.

/** Runs in the page; returns the texts below the AA minimums. */
export function auditContrast() {
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c);
    if (!m) return null;
    const [r, g, b, a = '1'] = m[1].split(/[ ,/]+/).filter(Boolean);
    return { r: +r, g: +g, b: +b, a: +a };
  };
  const over = (top, under) => {
    const a = top.a + under.a * (1 - top.a);
    if (a === 0) return { r: 0, g: 0, b: 0, a: 0 };
    const mix = (k) => (top[k] * top.a + under[k] * under.a * (1 - top.a)) / a;
    return { r: mix('r'), g: mix('g'), b: mix('b'), a };
  };
  const lum = ({ r, g, b }) => {
    const ch = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  // The effective background: this element's and its ancestors' colors
  // stacked until an opaque one (the canvas is white underneath).
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const hex = ({ r, g, b }) => '#' + [r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
  const name = (el) => el.dataset.testid ? `[data-testid=${el.dataset.testid}]` : el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ').join('.') : '');
  const failures = [];
  let checked = 0;
  const check = (el, text, color, style, minimum) => {
    const bg = background(el);
    const fg = over(parse(color), bg);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    const need = minimum ?? (large ? 3 : 4.5);
    const r = ratio(fg, bg);
    checked++;
    if (r < need) failures.push({ el: name(el), text: text.slice(0, 40), fg: hex(fg), bg: hex(bg), ratio: +r.toFixed(2), need });
  };
  for (const el of document.body.querySelectorAll('*')) {
    if (!el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0 || el.disabled) continue;
    const style = getComputedStyle(el);
    if (el.matches('input, textarea')) {
      if (el.value) check(el, el.value, style.color, style);
      else if (el.placeholder) check(el, el.placeholder, getComputedStyle(el, '::placeholder').color, style);
    } else if (el.matches('select')) {
      check(el, el.selectedOptions[0]?.textContent ?? '', style.color, style);
    } else if (!el.closest('select') && [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim())) {
      check(el, el.textContent.trim(), style.color, style);
    }
    // Status dots drawn with ::before carry meaning: 3:1 as non-text.
    const before = getComputedStyle(el, '::before');
    if (before.content && before.content !== 'none' && before.content !== 'normal' && before.content.replace(/["\s]/g, '')) {
      check(el, `::before ${before.content}`, before.color, style, 3);
    }
  }
  return { checked, failures };
}
