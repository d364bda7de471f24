// Tables as kubectl prints them: a header, columns padded to their widest cell, three spaces apart,
// no trailing spaces.

export function printTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  return `${[header, ...rows].map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('   ').trimEnd()).join('\n')}\n`;
}
