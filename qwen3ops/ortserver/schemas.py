"""Request and response bodies of the OpenAI- and Ollama-compatible APIs (pydantic models).

They validate requests (strictly: a string where a number belongs is an error, not a guess) and are the
OpenAPI schema the server publishes at /openapi.json. Unknown fields are ignored, as the reference APIs
do; known fields with a value this server cannot honour are refused with a message in the handlers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StopString = Annotated[str, Field(min_length=1, max_length=256)]
Stop = StopString | Annotated[list[StopString], Field(max_length=16)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


# --- OpenAI --------------------------------------------------------------------------------------


class TextPart(_Request):
    type: Literal["text"] = Field(description="Only text parts are supported")
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class StreamOptions(_Request):
    include_usage: bool = False


class _OpenAISampling(_Request):
    model: str = Field(min_length=1, description="The served model name (see /v1/models)")
    max_tokens: int | None = Field(None, ge=1, description="Tokens to generate at most")
    temperature: float | None = Field(None, ge=0, le=2, description="0 is greedy decoding")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, description="Extension: keep the k most likely tokens (0: all)")
    stop: Stop | None = None
    seed: int | None = Field(None, description="Same seed, same prompt, same parameters: same tokens")
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = Field(False, description="Extension: keep generating past end-of-sequence (benchmarks)")
    n: int = Field(1, ge=1, le=1, description="Only one choice per request is supported")
    presence_penalty: float = Field(0.0, ge=0, le=0, description="Only 0 is supported")
    frequency_penalty: float = Field(0.0, ge=0, le=0, description="Only 0 is supported")
    logit_bias: dict[str, float] | None = Field(None, description="Not supported (must be empty)")
    user: str | None = None


class ChatCompletionRequest(_OpenAISampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens (newer name)")
    logprobs: bool | None = Field(None, description="Not supported")
    tools: list[dict[str, Any]] | None = Field(None, description="Not supported (must be empty)")
    response_format: dict[str, Any] | None = Field(None, description="Only {\"type\": \"text\"}")
    chat_template_kwargs: dict[str, Any] | None = Field(
        None, description="Extension: variables for the chat template, e.g. {\"enable_thinking\": false}")


class CompletionRequest(_OpenAISampling):
    prompt: str | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = Field(
        description="Text, or token ids")
    echo: bool = Field(False, description="Not supported")
    logprobs: int | None = Field(None, description="Not supported")
    suffix: str | None = Field(None, description="Not supported")
    best_of: int | None = Field(None, ge=1, le=1)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    system_fingerprint: str


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    synthetic: bool = Field(description="True when the weights are random (synthetic): its output means nothing")
    precision: str
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: ErrorDetail


# --- Ollama --------------------------------------------------------------------------------------


class OllamaOptions(_Request):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    seed: int | None = None
    num_predict: int | None = Field(None, ge=-2, description="-1 or -2: until the context is full")
    stop: list[StopString] | None = Field(None, max_length=16)
    num_ctx: int | None = Field(None, ge=1, description="Ignored: the server's context length is fixed")


Think = bool | Literal["low", "medium", "high"]


class _OllamaRequest(_Request):
    model: str = Field(min_length=1)
    stream: bool = True
    options: OllamaOptions | None = None
    format: str | dict[str, Any] | None = Field(None, description="Not supported (must be empty)")
    keep_alive: float | str | None = Field(None, description="Ignored: the model stays loaded")
    think: Think | None = Field(None, description="Qwen3 thinking on or off (the chat template's enable_thinking)")


class OllamaGenerateRequest(_OllamaRequest):
    prompt: str | None = None
    system: str | None = None
    suffix: str | None = Field(None, description="Not supported (must be empty)")
    template: str | None = Field(None, description="Not supported (must be empty)")
    context: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="Token ids of an earlier exchange, placed before the prompt")
    raw: bool = Field(False, description="Send the prompt as is, without the chat template")
    images: list[str] | None = Field(None, description="Not supported (must be empty)")


class OllamaMessage(_Request):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = Field(None, description="Not supported (must be empty)")
    thinking: str | None = None


class OllamaChatRequest(_OllamaRequest):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = Field(None, description="Not supported (must be empty)")


class OllamaShowRequest(_Request):
    model: str = Field(min_length=1)


class OllamaStats(BaseModel):
    model: str
    created_at: str
    done: bool
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class OllamaGenerateResponse(OllamaStats):
    response: str


class OllamaChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class OllamaChatResponse(OllamaStats):
    message: OllamaChatMessageOut


class OllamaModelDetails(BaseModel):
    parent_model: str = ""
    format: str
    family: str
    families: list[str]
    parameter_size: str
    quantization_level: str


class OllamaModel(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: OllamaModelDetails


class OllamaTags(BaseModel):
    models: list[OllamaModel]


class OllamaVersion(BaseModel):
    version: str


class OllamaError(BaseModel):
    error: str
