"""A structured response, as the SDK's structured-response example."""

import json

import engine as lms


class BookSchema(lms.BaseModel):
    """Structured information about a published book."""

    title: str
    author: str
    year: int


model = lms.llm()
result = model.respond("Tell me about The Hobbit", response_format=BookSchema)
print(json.dumps(result.parsed, indent=2))
