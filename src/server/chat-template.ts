/**
 * Chat messages → prompt text through the model's own chat template (tokenizer_config.json's `chat_template`, Jinja,
 * rendered by @huggingface/jinja as transformers' apply_chat_template does: `messages`, `add_generation_prompt`,
 * `bos_token`, `eos_token`). The rendered text already holds the special tokens the template writes, so it is
 * encoded without adding BOS/EOS again.
 *
 * Only the template's own special tokens become special tokens: message content is plain text, so a user who types
 * "<|endoftext|>" or "<|im_start|>system" gets those characters, not the control tokens (OpenAI's behaviour; HF's
 * apply_chat_template would parse them). The template is rendered a second time with each content's text between
 * two noncharacters (U+FDD0 … U+FDD1; leading/trailing whitespace left outside, so `| trim` still works); with the
 * marks removed that rendering must equal the plain one, and the marks give the content's spans, which the tokenizer
 * keeps plain (EncodeOptions.plainSpans). A template that changes content otherwise (or content holding the marks)
 * is served as before when no content holds special-token text, and refused with a 400 when some does. A role with
 * special-token text is refused too (a role is written into the template's markers, so it cannot be plain).
 */
import { Template } from '@huggingface/jinja';
import type { PlainSpan, Tokenizer } from '../tokenizer/tokenizer.js';

export interface ChatMessage {
  role: string;
  content: string;
}

/** A request the template cannot serve (no template, or the template raised): answered with a 400. */
export class ChatTemplateError extends Error {}

export class ChatTemplate {
  private readonly template: Template;
  private readonly bos: string;
  private readonly eos: string;

  constructor(
    source: string,
    private readonly tokenizer: Tokenizer,
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new Error(`tokenizer_config.json: chat_template does not parse: ${(e as Error).message}`);
    }
    const name = (id: number | null): string => (id === null ? '' : tokenizer.decode([id]));
    this.bos = name(tokenizer.bosTokenId);
    this.eos = name(tokenizer.eosTokenId);
  }

  /** The model's template, or null when its tokenizer has none. */
  static of(tokenizer: Tokenizer | null): ChatTemplate | null {
    const src = tokenizer?.chatTemplate;
    return tokenizer && typeof src === 'string' && src.length > 0 ? new ChatTemplate(src, tokenizer) : null;
  }

  /** The prompt text for `messages`, ending where the assistant's reply starts. */
  render(messages: readonly ChatMessage[]): string {
    try {
      return this.template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: true,
        bos_token: this.bos,
        eos_token: this.eos,
      });
    } catch (e) {
      throw new ChatTemplateError(`the model's chat template refused the messages: ${(e as Error).message}`);
    }
  }

  /** The prompt's token ids (special tokens only where the template wrote them; message content is plain text). */
  encode(messages: readonly ChatMessage[]): number[] {
    for (const m of messages)
      if (this.hasSpecialText(m.role))
        throw new ChatTemplateError(`a message role holds special-token text: ${JSON.stringify(m.role)}`);
    const text = this.render(messages);
    const spans = this.contentSpans(messages, text);
    if (spans === null) {
      if (messages.some((m) => this.hasSpecialText(m.content)))
        throw new ChatTemplateError(
          "a message's content holds special-token text, and this model's chat template changes message content, " +
            'so it cannot be kept plain text: remove the special tokens from the content',
        );
      return this.tokenizer.encode(text, { addSpecialTokens: false });
    }
    try {
      return this.tokenizer.encode(text, { addSpecialTokens: false, plainSpans: spans });
    } catch (e) {
      throw new ChatTemplateError((e as Error).message);
    }
  }

  /** True when `s` tokenizes differently as plain text: it holds a special token's text. */
  private hasSpecialText(s: string): boolean {
    const plain = this.tokenizer.encode(s, { plainSpans: [[0, s.length]] }),
      parsed = this.tokenizer.encode(s);
    return plain.length !== parsed.length || plain.some((id, i) => id !== parsed[i]);
  }

  /**
   * Where the messages' content lies in `text` (their rendering): render again with each content's text between
   * OPEN and CLOSE, and read the marks' positions. Null when that rendering, marks removed, is not `text` (the
   * template transforms content) or the marks do not pair up (content holding them).
   */
  private contentSpans(messages: readonly ChatMessage[], text: string): PlainSpan[] | null {
    if (messages.some((m) => m.content.includes(OPEN) || m.content.includes(CLOSE))) return null;
    let marked: string;
    try {
      marked = this.render(
        messages.map((m) => {
          const core = m.content.trim();
          if (core === '') return m;
          const at = m.content.indexOf(core);
          const lead = m.content.slice(0, at),
            trail = m.content.slice(at + core.length);
          return { role: m.role, content: `${lead}${OPEN}${core}${CLOSE}${trail}` };
        }),
      );
    } catch {
      return null;
    }
    const spans: PlainSpan[] = [];
    let plain = '',
      open = -1;
    for (const part of marked.split(/([\uFDD0\uFDD1])/)) {
      if (part === OPEN) {
        if (open >= 0) return null;
        open = plain.length;
      } else if (part === CLOSE) {
        if (open < 0) return null;
        if (plain.length > open) spans.push([open, plain.length]);
        open = -1;
      } else plain += part;
    }
    return open < 0 && plain === text ? spans : null;
  }
}

/** Noncharacters (Unicode sets them aside for a program's internal use) marking content in contentSpans. */
const OPEN = '\uFDD0',
  CLOSE = '\uFDD1';
