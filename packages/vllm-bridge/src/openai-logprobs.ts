/**
 * The `logprobs` of OpenAI responses in vLLM's shapes, from the engine's per-token entries
 * ({@link TokenLogprob}): completions' `{text_offset, token_logprobs, tokens, top_logprobs}` and chat's
 * `{content: [{token, logprob, bytes, top_logprobs}]}`.
 * @module
 */
import type { TokenLogprob, TopLogprob } from './engine.js';

/** `choices[].logprobs` of a completion (vLLM's `CompletionLogProbs`). */
export interface CompletionLogprobs {
  /** Where each token starts in the choice's text (characters, as Python counts them). */
  text_offset: number[];
  token_logprobs: number[];
  tokens: string[];
  /** Per step: the sampled token and the `logprobs` most likely ones, by text, most likely first. */
  top_logprobs: Record<string, number>[];
}

/** One token of chat's `choices[].logprobs.content` (vLLM's `ChatCompletionLogProbsContent`). */
export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** Length in Unicode code points (Python's `len`, which vLLM's `text_offset` counts in). */
export function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** The UTF-8 bytes of a token's text (chat's `bytes`). */
function bytesOf(token: string): number[] {
  return Array.from(Buffer.from(token, 'utf8'));
}

/**
 * The step's top tokens with the sampled one added where it is not among them (OpenAI: "up to
 * logprobs + 1" entries), most likely first.
 */
function withSampled(lp: TokenLogprob): TopLogprob[] {
  if (lp.top.some((t) => t.tokenId === lp.tokenId)) return lp.top;
  return [...lp.top, { tokenId: lp.tokenId, token: lp.token, logprob: lp.logprob }].sort((a, b) => b.logprob - a.logprob);
}

/**
 * Completions' `logprobs` for `lps`, whose first token starts at character `offset` of the choice's text.
 * Returns the object and the offset after the last token (where the next chunk's tokens start).
 */
export function completionLogprobs(lps: readonly TokenLogprob[], offset: number): { logprobs: CompletionLogprobs; end: number } {
  const out: CompletionLogprobs = { text_offset: [], token_logprobs: [], tokens: [], top_logprobs: [] };
  let at = offset;
  for (const lp of lps) {
    out.text_offset.push(at);
    out.token_logprobs.push(lp.logprob);
    out.tokens.push(lp.token);
    const top: Record<string, number> = {};
    for (const t of withSampled(lp)) if (!Object.hasOwn(top, t.token)) top[t.token] = t.logprob;
    out.top_logprobs.push(top);
    at += codePointLength(lp.token);
  }
  return { logprobs: out, end: at };
}

/** Chat's `logprobs` for `lps`: `{content: [...]}` with the `top_logprobs` most likely tokens of each step. */
export function chatLogprobs(lps: readonly TokenLogprob[]): { content: ChatLogprob[] } {
  return {
    content: lps.map((lp) => ({
      token: lp.token,
      logprob: lp.logprob,
      bytes: bytesOf(lp.token),
      top_logprobs: lp.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytesOf(t.token) })),
    })),
  };
}
