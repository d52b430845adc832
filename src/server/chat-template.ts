/**
 * Chat messages → prompt text through the model's own chat template (tokenizer_config.json's `chat_template`, Jinja,
 * rendered by @huggingface/jinja as transformers' apply_chat_template does: `messages`, `add_generation_prompt`,
 * `bos_token`, `eos_token`). The rendered text already holds the special tokens the template writes, so it is
 * encoded without adding BOS/EOS again.
 */
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer/tokenizer.js';

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

  /** The prompt's token ids (special tokens only where the template wrote them). */
  encode(messages: readonly ChatMessage[]): number[] {
    return this.tokenizer.encode(this.render(messages), { addSpecialTokens: false });
  }
}
