// The report's stylesheet, inlined into its <head>: system fonts only, so nothing is fetched.
export const REPORT_CSS = `
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d1d1f;background:#f6f6f4}
main{max-width:1340px;margin:0 auto}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:0 0 6px}
.muted{color:#666}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:12px 0 0}
dl.summary dt{color:#666}
dl.summary dd{margin:0;overflow-wrap:anywhere}
code{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:#ecece8;padding:1px 4px;border-radius:3px}
table.metrics{border-collapse:collapse;background:#fff;min-width:720px}
table.metrics th,table.metrics td{padding:6px 12px;border-bottom:1px solid #e4e4e0;text-align:right}
table.metrics th:first-child,table.metrics td:first-child{text-align:left}
table.metrics thead th{background:#ecece8;font-weight:600}
table.metrics tr.mean td{font-weight:700;border-top:2px solid #bbb}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.chart-card{background:#fff;border:1px solid #e0e0dc;border-radius:6px;padding:10px 12px}
.chart-card .pair{display:flex;gap:8px;align-items:flex-start}
svg.chart{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#333}
svg.chart .axis-label{fill:#666}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;margin:6px 0 12px}
.jet{display:inline-block;width:160px;height:12px;vertical-align:middle;border:1px solid #999;
 background:linear-gradient(to right,#00007f,#0000ff 11%,#007fff 23%,#00ffff 36%,#7fff7f 50%,#ffff00 64%,#ff7f00 77%,#ff0000 89%,#7f0000)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,var(--cell));gap:12px}
figure.cell{margin:0;background:#fff;border:1px solid #e0e0dc;border-left:5px solid #aaa;border-radius:6px;padding:8px}
figure.cell.FN{border-left-color:#c62828}
figure.cell.FP{border-left-color:#ef8f00}
figure.cell.TP{border-left-color:#2e7d32}
figure.cell.TN{border-left-color:#90a4ae}
.pics{display:flex;gap:4px}
.pics img,.pics .none{display:block;width:var(--thumb);height:var(--thumb);border-radius:3px}
.pics .none{display:flex;align-items:center;justify-content:center;text-align:center;background:#f0f0ec;color:#888;font-size:12px;padding:8px}
.pic-labels{display:flex;gap:4px;font-size:11px;color:#777}
.pic-labels span{width:var(--thumb);text-align:center}
figcaption{margin-top:6px;font-size:12.5px;line-height:1.5}
figcaption .name{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
figcaption .wrong{color:#c62828;font-weight:600}
.verdict{display:inline-block;padding:0 7px;border-radius:10px;font-weight:700;font-size:12px;color:#fff;background:#90a4ae}
.verdict.FN{background:#c62828}.verdict.FP{background:#ef8f00}.verdict.TP{background:#2e7d32}
p.left-out{margin-top:14px;color:#555}
footer{margin-top:30px;color:#888;font-size:12px}
`;
