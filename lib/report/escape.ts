// Every string that reaches the report (file names, class and defect names, the command line) goes
// through here: file names may hold <, &, or quotes, and a report must not run what a file name says.
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe inside an element or a quoted attribute value, in HTML and inline SVG alike. */
export function escapeHtml(text: string): string {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
