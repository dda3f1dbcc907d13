import engine as lms

model = lms.llm("qwen2.5-7b-instruct")

# The `chat` object is created in the previous step.
result = model.complete("My name is", config={"maxTokens": 100})

print(result)

# `result` is the response from the model.
print("Model used:", result.model_info.display_name)
print("Predicted tokens:", result.stats.predicted_tokens_count)
print("Time to first token (seconds):", result.stats.time_to_first_token_sec)
print("Stop reason:", result.stats.stop_reason)

initial_text = "Once upon a time"
result = model.complete(initial_text, config={
    "temperature": 0.6,
    "maxTokens": 50,
})
print("Custom params stop reason:", result.stats.stop_reason)
