"""Language and "is this a contract" on real contracts and Terms of Service, on contracts
written here in other languages, and on text that is not a contract."""

import json
import random

import pytest

from contract_review.annotation.contract_signal import contract_signal
from contract_review.annotation.language import detect_language

CHINESE = """采购合同

甲方（买方）：上海华信贸易有限公司
乙方（卖方）：深圳明达电子科技有限公司

根据《中华人民共和国民法典》及相关法律法规的规定，甲乙双方在平等、自愿、公平的基础上，经协商一致，签订本合同，以资共同遵守。

第一条 产品名称、数量及价格
乙方向甲方供应电子元器件，合同总金额为人民币伍拾万元整（￥500,000元）。

第二条 交货期限
乙方应于本合同签订之日起三十日内将全部货物交付至甲方指定地点。

第三条 付款方式
甲方应在收到货物并验收合格后十五个工作日内支付全部货款。

第四条 违约责任
任何一方违反本合同约定的，应向守约方支付合同总金额百分之十的违约金。

第五条 争议解决
因本合同引起的争议，双方应协商解决；协商不成的，任何一方均可向甲方所在地人民法院提起诉讼。
"""

EUROPEAN = {
    "de": "Dieser Vertrag wird zwischen der Muster GmbH (nachfolgend „Auftraggeber“) und der Beispiel AG (nachfolgend "
          "„Auftragnehmer“) geschlossen.\n\n§ 1 Vertragsgegenstand. Der Auftragnehmer verpflichtet sich, die in der "
          "Anlage beschriebenen Leistungen zu erbringen.\n\n§ 2 Vergütung. Der Auftraggeber zahlt dem Auftragnehmer "
          "eine monatliche Vergütung von 5.000 Euro.\n\n§ 3 Kündigung. Der Vertrag kann von jeder Partei mit einer "
          "Frist von drei Monaten zum Monatsende gekündigt werden. Die Haftung ist auf den Auftragswert begrenzt.",
    "fr": "Le présent contrat est conclu entre la société Alpha SAS, ci-après dénommée « le Fournisseur », et la "
          "société Beta SARL, ci-après dénommée « le Client ».\n\nArticle 1 – Objet. Le Fournisseur s'engage à livrer "
          "les produits décrits à l'annexe 1.\n\nArticle 2 – Prix et paiement. Le Client paiera le prix convenu dans un "
          "délai de trente jours à compter de la date de la facture.\n\nArticle 3 – Résiliation. Chaque partie peut "
          "résilier le présent contrat moyennant un préavis de trois mois adressé par lettre recommandée.",
    "es": "El presente contrato se celebra entre Alfa S.A., en adelante «el Proveedor», y Beta S.L., en adelante «el "
          "Cliente».\n\nCláusula primera. Objeto. El Proveedor se obliga a suministrar los productos descritos en el "
          "anexo.\n\nCláusula segunda. Precio. El Cliente pagará el precio acordado en un plazo de treinta días desde la "
          "fecha de la factura.\n\nCláusula tercera. Resolución. Cualquiera de las partes podrá resolver el contrato "
          "con un preaviso de tres meses.",
    "it": "Il presente contratto è stipulato tra Alfa S.p.A., di seguito «il Fornitore», e Beta S.r.l., di seguito «il "
          "Cliente».\n\nArticolo 1 – Oggetto. Il Fornitore si impegna a fornire i prodotti descritti nell'allegato.\n\n"
          "Articolo 2 – Prezzo. Il Cliente pagherà il prezzo concordato entro trenta giorni dalla data della fattura."
          "\n\nArticolo 3 – Recesso. Ciascuna delle parti può recedere dal contratto con un preavviso di tre mesi.",
    "nl": "Deze overeenkomst wordt gesloten tussen Alfa B.V., hierna te noemen „de Leverancier”, en Beta B.V., hierna te "
          "noemen „de Klant”.\n\nArtikel 1 – Onderwerp. De Leverancier verplicht zich de in de bijlage beschreven "
          "producten te leveren.\n\nArtikel 2 – Prijs. De Klant betaalt de overeengekomen prijs binnen dertig dagen na "
          "de factuurdatum.\n\nArtikel 3 – Opzegging. Elke partij kan de overeenkomst opzeggen met een opzegtermijn "
          "van drie maanden.",
    "pl": "Niniejsza umowa zostaje zawarta pomiędzy Alfa Sp. z o.o., zwaną dalej „Dostawcą”, a Beta S.A., zwaną dalej "
          "„Klientem”.\n\n§ 1 Przedmiot umowy. Dostawca zobowiązuje się dostarczyć produkty opisane w załączniku.\n\n"
          "§ 2 Cena. Klient zapłaci uzgodnioną cenę w terminie trzydziestu dni od daty wystawienia faktury.\n\n"
          "§ 3 Rozwiązanie umowy. Każda ze stron może rozwiązać umowę z zachowaniem trzymiesięcznego okresu "
          "wypowiedzenia.",
    "pt": "O presente contrato é celebrado entre Alfa Ltda., doravante denominada «Fornecedora», e Beta S.A., doravante "
          "denominada «Cliente».\n\nCláusula primeira. Objeto. A Fornecedora obriga-se a fornecer os produtos descritos "
          "no anexo.\n\nCláusula segunda. Preço. A Cliente pagará o preço acordado no prazo de trinta dias a contar da "
          "data da fatura.\n\nCláusula terceira. Rescisão. Qualquer das partes poderá rescindir o contrato mediante "
          "aviso prévio de três meses.",
    "ru": "Настоящий договор заключен между ООО «Альфа», именуемым в дальнейшем «Поставщик», и ООО «Бета», именуемым в "
          "дальнейшем «Покупатель».\n\n1. Предмет договора. Поставщик обязуется поставить товар, указанный в "
          "приложении.\n\n2. Цена. Покупатель оплачивает товар в течение тридцати дней с даты получения счета.",
}

NOT_CONTRACTS = {
    "news": "The city council voted on Tuesday to extend the opening hours of the public library after a long debate "
            "about funding. Residents who attended the meeting said the change would help students and working "
            "parents. The mayor thanked volunteers and announced a reading festival next spring, with concerts, "
            "workshops and a market in the main square.",
    "recipe": "Preheat the oven to 180 degrees. Mix the flour, sugar and butter in a large bowl until the dough is "
              "smooth. Add two eggs and a pinch of salt, then bake for forty minutes until golden. Let the cake cool "
              "before serving it with fresh berries.",
    "lorem": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
             "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip "
             "ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore.",
    "mash": "asdfgh qwrtzp xkcdvbn jjjkkk zxcvbnm lkjhgf poiuyt mnbvcx sdfghj wqrtzp hjklzx " * 5,
    "code": "def main(argv):\n    parser = argparse.ArgumentParser()\n    parser.add_argument('--out', type=Path)\n"
            "    args = parser.parse_args(argv)\n    for x in range(10):\n        print(x ** 2, file=sys.stderr)\n"
            "    return 0\n",
}


def _sample(cuad_dir, n=12):
    files = sorted((cuad_dir / "full_contract_txt").glob("*.txt"))
    return random.Random(7).sample(files, n)


def test_english_contracts_are_english_and_look_like_contracts(cuad_dir):
    for path in _sample(cuad_dir):
        text = path.read_text(encoding="utf-8-sig")
        report = detect_language(text)
        assert (report.language, report.supported, report.warning()) == ("en", True, None), path.name
        assert contract_signal(text).looks_like_contract, (path.name, contract_signal(text).reasons)


def test_terms_of_service_are_contracts_too(claudette_dir):
    path = sorted((claudette_dir / "Sentences").glob("*.txt"))[0]
    text = path.read_text(encoding="utf-8")
    assert detect_language(text).language == "en"
    assert contract_signal(text).looks_like_contract


def test_a_chinese_contract_is_recognised_as_chinese_and_not_supported():
    report = detect_language(CHINESE)
    assert (report.language, report.name, report.script, report.supported) == ("zh", "Chinese", "Han", False)
    assert "Chinese" in report.warning() and "English" in report.warning()
    signal = contract_signal(CHINESE)
    assert signal.looks_like_contract and signal.parties and signal.sections >= 5


def test_a_bilingual_contract_is_mixed_and_says_how_much_is_not_english(cuad_dir):
    english = sorted((cuad_dir / "full_contract_txt").glob("*.txt"))[3].read_text(encoding="utf-8-sig")[:3000]
    report = detect_language(english + "\n\n" + CHINESE)
    assert report.mixed and not report.supported and set(report.shares) == {"en", "zh"}
    assert 0.25 < report.shares["zh"] < 0.75 and "Chinese" in report.warning()
    # mostly English with a Chinese schedule: English first, the share of Chinese said
    report = detect_language(english * 3 + "\n\n" + CHINESE)
    assert report.language == "en" and report.mixed
    assert report.warning().startswith("Part of this contract is not in English: Chinese (")


@pytest.mark.parametrize("code", sorted(EUROPEAN))
def test_contracts_in_other_languages_are_named_and_not_supported(code):
    report = detect_language(EUROPEAN[code])
    assert report.language == code and not report.supported and report.name in report.warning()
    assert contract_signal(EUROPEAN[code]).looks_like_contract, contract_signal(EUROPEAN[code]).reasons


@pytest.mark.parametrize("kind", sorted(NOT_CONTRACTS))
def test_text_that_is_not_a_contract_is_told_apart(kind):
    signal = contract_signal(NOT_CONTRACTS[kind])
    assert not signal.looks_like_contract and signal.reasons
    assert json.loads(json.dumps(signal.to_dict()))["looks_like_contract"] is False


def test_nothing_to_read_is_an_unknown_language():
    report = detect_language("12345 678 -- ** ##")
    assert report.language == "und" and not report.supported and report.warning()
