"""The reviewer app: a lawyer uploads a contract and reviews it clause by clause (Gradio)."""
