"""The report's one stylesheet, inlined into index.html (no fonts or files from the
network: the system's own sans-serif and monospace fonts)."""

from __future__ import annotations

CSS = """
:root {
  color-scheme: light;
  --text: #1f2328; --muted: #59636e; --rule: #d1d9e0; --soft: #f6f8fa;
  --accent: #0b5cad; --best: #dff3e4; --best-text: #0f5323;
}
* { box-sizing: border-box; }
html { background: #fff; }
body {
  margin: 0; color: var(--text); background: #fff;
  font: 16px/1.6 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
    "Noto Sans", "Liberation Sans", Arial, sans-serif;
  -webkit-text-size-adjust: 100%;
}
main { max-width: 62rem; margin: 0 auto; padding: 2.5rem 1.5rem 4rem; }
header { border-bottom: 1px solid var(--rule); padding-bottom: 1rem; margin-bottom: 1.5rem; }
h1 { font-size: 2rem; line-height: 1.25; margin: 0 0 .4rem; letter-spacing: -0.01em; }
h2 {
  font-size: 1.45rem; line-height: 1.3; margin: 2.6rem 0 .8rem; padding-top: .2rem;
  border-top: 1px solid var(--rule); padding-top: 1.2rem;
}
h3 { font-size: 1.12rem; line-height: 1.35; margin: 1.8rem 0 .6rem; }
h2 + h3 { margin-top: 1rem; }
p, ul, ol { margin: 0 0 .9rem; max-width: 46rem; }
li { margin: .15rem 0; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code {
  font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: .88em; background: var(--soft); border-radius: 4px; padding: .08em .3em;
}
.generated { color: var(--muted); font-size: .9rem; margin: 0; }
nav.toc {
  background: var(--soft); border: 1px solid var(--rule); border-radius: 8px;
  padding: .8rem 1.2rem .6rem; margin: 0 0 1.5rem; font-size: .95rem;
}
nav.toc h2 {
  font-size: .8rem; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
  margin: 0 0 .3rem; padding: 0; border: 0;
}
nav.toc ol { margin: 0 0 .3rem; padding-left: 1.4rem; max-width: none; }
nav.toc ol ol { margin: .1rem 0 .2rem; padding-left: 1.2rem; list-style: lower-alpha; }
nav.toc.long > ol { columns: 2 20rem; column-gap: 2rem; }
nav.toc li { margin: .1rem 0; break-inside: avoid; }
.table-wrap { overflow-x: auto; margin: .4rem 0 .3rem; }
table {
  border-collapse: collapse; font-size: .92rem; min-width: 50%;
  font-variant-numeric: tabular-nums;
}
th, td { padding: .38rem .8rem; text-align: left; vertical-align: top; }
thead th {
  background: var(--soft); border-bottom: 2px solid var(--rule); font-weight: 600;
  vertical-align: bottom; line-height: 1.3; max-width: 10rem;
}
tbody td { border-bottom: 1px solid #eaeef2; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
th.num { text-align: right; }
td.num { text-align: right; white-space: nowrap; }
td.best { background: var(--best) !important; color: var(--best-text); font-weight: 600; }
figure { margin: .6rem 0 1.4rem; }
figure img {
  display: block; max-width: 100%; height: auto; border: 1px solid #eaeef2;
  border-radius: 4px; background: #fff;
}
.caption, figcaption {
  color: var(--muted); font-size: .9rem; margin: .45rem 0 0; max-width: 46rem;
}
.caption b, figcaption b { color: var(--text); font-weight: 600; }
.snippet { margin: .4rem 0 1rem; }
dl.config {
  display: grid; grid-template-columns: minmax(8rem, max-content) 1fr; gap: .3rem 1.2rem;
  margin: .4rem 0 1rem; font-size: .92rem;
}
dl.config dt { font-weight: 600; color: var(--muted); }
dl.config dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
  font-size: .88rem; overflow-wrap: anywhere; }
dl.config dl.config { margin: 0; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc { break-after: avoid; }
  h2, h3 { break-after: avoid; }
  figure, .table-wrap, tr { break-inside: avoid; }
  .table-wrap { overflow: visible; }
  a { color: inherit; }
  tbody tr:nth-child(even) td { background: none; }
}
@page { margin: 16mm 14mm; }
"""
