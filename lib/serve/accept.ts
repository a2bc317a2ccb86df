// Content negotiation for POST /v1/score: JSON unless the Accept header ranks image/png above it
// (RFC 9110: the most specific matching range gives a type its quality; on a tie JSON wins, so
// `*/*` and browsers' defaults get JSON, `Accept: image/png` the heatmap itself). An Accept header
// that matches neither is disregarded (JSON), as RFC 9110 allows, rather than refused with 406.

interface Range {
  type: string;
  subtype: string;
  q: number;
}

function parse(accept: string): Range[] {
  const out: Range[] = [];
  for (const item of accept.split(',')) {
    const [media, ...params] = item.split(';').map((s) => s.trim().toLowerCase());
    const m = /^([a-z0-9!#$%&'*+.^_`|~-]+)\/([a-z0-9!#$%&'*+.^_`|~-]+)$/.exec(media ?? '');
    if (!m) continue;
    let q = 1;
    for (const p of params) {
      const qm = /^q=([01](?:\.\d{0,3})?)$/.exec(p);
      if (qm) q = Math.min(1, Number(qm[1]));
    }
    out.push({ type: m[1]!, subtype: m[2]!, q });
  }
  return out;
}

/** The quality the header gives type/subtype: that of the most specific range matching it (0: none). */
function quality(ranges: Range[], type: string, subtype: string): number {
  let best = -1;
  let q = 0;
  for (const r of ranges) {
    const specificity = r.type === type && r.subtype === subtype ? 2 : r.type === type && r.subtype === '*' ? 1 : r.type === '*' && r.subtype === '*' ? 0 : -1;
    if (specificity > best) {
      best = specificity;
      q = r.q;
    }
  }
  return q;
}

/** True when the client asks for the PNG itself rather than JSON. */
export function wantsPng(accept: string | undefined): boolean {
  if (accept === undefined || accept.length === 0) return false;
  const ranges = parse(accept);
  return quality(ranges, 'image', 'png') > quality(ranges, 'application', 'json');
}
