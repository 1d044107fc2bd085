from celery import shared_task

from labelers import services


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def label_fetch(label_id: int) -> str:
    return services.label_fetch(label_id=label_id)


@shared_task(ignore_result=True)
def label_sweep() -> int:
    return services.labels_sweep()
