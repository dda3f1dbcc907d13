"""A simulated terminal, as the SDK's terminal-sim example: `exit` or EOF ends it."""

import readline  # noqa: F401  (line editing at a terminal, as the example has)

import engine as lms

model = lms.llm()
history = []

while True:
    try:
        command = input("$ ")
    except EOFError:
        print()
        break
    if command.strip() == "exit":
        break
    history.append(f"$ {command}")
    stream = model.complete_stream("\n".join(history), config={"stopStrings": ["$"]})
    for fragment in stream:
        print(fragment.content, end="", flush=True)
    print()
    history.append(stream.result().content)
