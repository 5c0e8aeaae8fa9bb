"""Complaint classification: fine-tune a Qwen3 model to name the complaint category of a call.

One job per module, each with a CLI (`python -m finetune.<module> --help`):

    config      defaults, config files and `--set key=value` overrides
    readers     read JSONL transcripts, MobileCS JSON and TSV/CSV `text,label` files
    taxonomy    the versioned label file and validation of data labels against it
    pii         typed PII detectors and masking (mobile, ID card, bank card, e-mail, address, name)
    cleaning    ASR marks, fillers, spoken digits, speaker roles
    preprocess  records -> cleaned, masked, length-bounded, de-duplicated, split examples + data report
    synthetic   a seeded generator of realistic synthetic call transcripts
    train       LoRA / full fine-tuning of Qwen3ForSequenceClassification, with checkpoints and resume
    metrics     accuracy, macro-F1, per-class precision/recall/F1, confusion matrix
    evaluate    the held-out evaluation beside the TF-IDF + logistic-regression baseline
    report      the Markdown + HTML run report
    pipeline    preprocess -> train -> evaluate -> report (-> export) in one command
    export      merge LoRA into the model and publish the classifier to the artifact store
    serve       a small HTTP `/v1/classify` endpoint for an exported classifier
    client      a client example for that endpoint
    sweep       a small hyper-parameter sweep whose tables back docs/finetune.md
    system      hardware description and peak memory

docs/finetune.md is the guide; `python -m finetune.pipeline --config finetune/configs/tiny-cocc.yml` the demo.
"""
