/**
 * Exclude patterns for packed directories (`workingDir`, `pyModules`), in the gitignore style that Ray
 * uses: `name` matches that file or directory name at any depth, `dir/` matches directories only, a
 * pattern with a slash (`/build`, `src/*.tmp`) is relative to the packed root, `*`, `?` and `**` glob.
 * Negations (`!pattern`) are not supported (ignored).
 * @module
 */

/** Always left out of a packed directory. */
export const DEFAULT_EXCLUDES: readonly string[] = ['.git', '.venv', 'venv', '__pycache__', 'node_modules', '.DS_Store'];

interface Rule {
  re: RegExp;
  anchored: boolean;
  dirOnly: boolean;
}

function globToRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` = any number of directories; `**` at the end = anything.
        if (glob[i + 2] === '/') {
          out += '(?:.*/)?';
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return out;
}

/** A compiled set of exclude patterns. */
export class ExcludeMatcher {
  private readonly rules: Rule[] = [];

  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '' || p.startsWith('#') || p.startsWith('!')) continue;
      let dirOnly = false;
      if (p.endsWith('/')) {
        dirOnly = true;
        p = p.replace(/\/+$/, '');
      }
      const anchored = p.includes('/');
      p = p.replace(/^\/+/, '');
      if (p === '') continue;
      this.rules.push({ re: new RegExp(`^${globToRegex(p)}$`), anchored, dirOnly });
    }
  }

  /** True when the entry at `rel` (posix path relative to the root) is excluded. */
  excludes(rel: string, isDir: boolean): boolean {
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    for (const r of this.rules) {
      if (r.dirOnly && !isDir) continue;
      if (r.re.test(r.anchored ? rel : base)) return true;
    }
    return false;
  }
}
