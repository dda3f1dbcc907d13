"""An interactive chatbot, as the SDK's chatbot example: a blank line or EOF ends it."""

import readline  # noqa: F401  (line editing at a terminal, as the example has)

import engine as lms

model = lms.llm()
chat = lms.Chat("You are a task focused AI assistant")

while True:
    try:
        line = input("You (leave blank to exit): ")
    except EOFError:
        print()
        break
    if not line:
        break
    chat.add_user_message(line)
    stream = model.respond_stream(chat, on_message=chat.append)
    print("Bot: ", end="", flush=True)
    for fragment in stream:
        print(fragment.content, end="", flush=True)
    print()
