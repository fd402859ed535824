// Code blocks of a Markdown file, with the section they are in (for the doc-tests).

import { readFileSync } from 'node:fs';

export interface CodeBlock {
  /** The fence's language (`js`, `ts`, `sh`, `json`, …; '' when it names none). */
  lang: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The nearest `## ` heading above it. */
  section: string;
  /** Preceded by a `<!-- runnable -->` line (blank lines between allowed). */
  runnable: boolean;
}

export function codeBlocks(path: string): CodeBlock[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const blocks: CodeBlock[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^## (.*)$/.exec(lines[i]!);
    if (heading !== null) section = heading[1]!.trim();
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(Math.min(indent, lines[j]!.length - lines[j]!.trimStart().length)));
    if (j === lines.length) throw new Error(`${path}:${i + 1}: code block never closed`);
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    blocks.push({ lang: open[2]!, code: body.join('\n') + '\n', line: i + 1, section, runnable: k >= 0 && lines[k]!.trim() === '<!-- runnable -->' });
    i = j;
  }
  return blocks;
}

/** The rows of the first Markdown table after `## <section>`, as cells (header and separator left out). */
export function tableRows(path: string, section: string): string[][] {
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf(`\n## ${section}\n`);
  if (start < 0) throw new Error(`${path} has no section "## ${section}"`);
  const lines = text.slice(start).split('\n').slice(2);
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split(' | ').map((cell) => cell.trim()));
  }
  return rows;
}
