"""In-process transformers/PEFT multi-adapter engine: the fallback where vLLM is not installed."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Sequence

from agent.serving.engine import Completion, EngineError, SamplingParams
from baking.render import Message, encode


class TransformersEngine:
    """In-process PEFT multi-adapter engine: the fallback where vLLM is not installed."""

    def __init__(self, model_ref: str, device: str = "cpu") -> None:
        from baking.model import load_model

        self.model, self.tokenizer = load_model(model_ref, device=device)
        self.peft = None
        self.lock = threading.Lock()  # one PEFT model: adapters switch per request

    @contextlib.contextmanager
    def _selected(self, adapter: str | None):
        """The model with ``adapter`` active (None: adapters disabled), under the lock."""
        with self.lock:
            model = self.peft if self.peft is not None else self.model
            if adapter is not None:
                if adapter not in self.adapters():
                    raise EngineError(f"adapter {adapter!r} is not loaded")
                model.set_adapter(adapter)
            disabled = model.disable_adapter() if (adapter is None and self.peft is not None) else contextlib.nullcontext()
            with disabled:
                yield model

    def _generate(self, messages, adapter, n, params: SamplingParams) -> list[Completion]:
        import torch

        from baking.render import encode
        from baking.sampling import sample

        prompt = encode(self.tokenizer, messages)
        with self._selected(adapter) as model:
            outputs = sample(
                model, [prompt] * n, eos_id=self.tokenizer.eos_token_id,
                pad_id=self.tokenizer.pad_token_id, max_new_tokens=params.max_tokens,
                temperature=params.temperature, topk=max(params.top_logprobs, 1),
                generator=torch.Generator().manual_seed(params.seed or 0), batch_size=max(n, 1),
                bf16=False,
            )
        completions = []
        for out in outputs:
            top = []
            if params.top_logprobs:
                for values, ids in zip(out.logprobs.tolist(), out.ids.tolist()):
                    top.append({self.tokenizer.decode([i]): v for i, v in zip(ids, values)})
            completions.append(Completion(
                text=self.tokenizer.decode(out.tokens, skip_special_tokens=True).strip(),
                adapter=adapter, prompt_tokens=len(prompt), completion_tokens=len(out.tokens),
                top_logprobs=top,
            ))
        return completions

    def chat(self, messages, adapter, params=SamplingParams(), tools=None, tool_choice="auto") -> Completion:
        if tools:
            raise EngineError("the in-process engine has no OpenAI tool calling: serve with vLLM "
                              "(engine.tool_call_parser) or use engine.tool_calling: text")
        return self._generate(messages, adapter, 1, params)[0]

    def sample(self, messages, adapter, n, params=SamplingParams(temperature=1.0)) -> list[Completion]:
        return self._generate(messages, adapter, n, params)

    def score(self, messages, adapter, continuations) -> list[float]:
        with self._selected(adapter) as model:
            return choice_logliks(model, self.tokenizer, messages, continuations)

    def load_adapter(self, name: str, path: Path | str) -> None:
        from peft import PeftModel

        with self.lock:
            if name in self.adapters():
                raise EngineError(f"adapter name {name!r} was already loaded; names are never reused")
            try:
                if self.peft is None:
                    self.peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
                else:
                    self.peft.load_adapter(str(path), adapter_name=name)
            except (OSError, ValueError) as e:
                raise EngineError(f"loading adapter {name!r} from {path} failed: {e}") from e

    def unload_adapter(self, name: str) -> None:
        with self.lock:
            if self.peft is None or name not in self.peft.peft_config:
                raise EngineError(f"adapter {name!r} is not loaded")
            if len(self.peft.peft_config) == 1:
                self.model = self.peft.unload()  # back to the plain base model
                self.peft = None
            else:
                self.peft.delete_adapter(name)

    def adapters(self) -> list[str]:
        return list(self.peft.peft_config) if self.peft is not None else []

    def health(self) -> bool:
        return True

    def close(self) -> None:
        pass


def choice_logliks(model, tokenizer, messages: list[Message], choices: Sequence[str]) -> list[float]:
    """Sum of log p(choice tokens | prompt) for each choice, the model as an assistant turn; the
    choices go through the model as one right-padded batch."""
    import torch

    prompt = encode(tokenizer, messages)
    device = next(model.parameters()).device
    ids = [tokenizer(choice, add_special_tokens=False)["input_ids"] for choice in choices]
    width = len(prompt) + max(len(i) for i in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows = torch.tensor([prompt + i + [pad] * (width - len(prompt) - len(i)) for i in ids], device=device)
    mask = torch.tensor([[1] * (len(prompt) + len(i)) + [0] * (width - len(prompt) - len(i)) for i in ids],
                        device=device)
    with torch.no_grad():
        logits = model(input_ids=rows, attention_mask=mask).logits[:, len(prompt) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [float(logprobs[k, : len(i)].gather(-1, torch.tensor(i, device=device)[:, None]).sum())
            for k, i in enumerate(ids)]
